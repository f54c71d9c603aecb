from __future__ import annotations

from scheduler_daemon.cli import main

main()

"""The reliability soak (bench/soak.py) for 60 s: every fault kind once or more, every must
held. The published 30-minute run is in docs/reliability.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_60_second_soak_holds_every_must(project_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    result = subprocess.run(
        [sys.executable, str(project_root / "bench" / "soak.py"), "--seconds", "60"],
        cwd=project_root,
        env=env | {"SCHEDULER_ENV_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert "every must holds" in result.stdout
    assert "fault kinds never injected" in result.stdout

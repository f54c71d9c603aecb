"""A fake of the AMC API, over real HTTP on loopback, for the demo, tests and benches.

- ``server``: the HTTP server (``FakeAmcServer``) and its ledger of requests, also runnable
  alone (``python -m scheduler_daemon.amc.fake.server``).
- ``state``: what it holds (workflows, executions, tokens), with AMC's validations.
- ``faults``: faults to inject (throttling, 5xx, lost responses, latency).
- ``testing``: an executor wired to the fake with fast retries.
"""

from __future__ import annotations

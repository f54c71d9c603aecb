"""Amazon Marketing Cloud: request building, the REST client, Login-with-Amazon tokens and a
fake AMC server for tests and demos.

Modules, one job each:

- ``windows``: a run's time window, rendered from its slot and zone (pure).
- ``body``: the JSON body of a create-execution request (pure).
- ``secret``, ``credentials``: secrets that never print, and where they come from.
- ``tokens``: Login-with-Amazon access tokens, cached and refreshed one at a time.
- ``responses``: AMC's JSON, flat or wrapped, into typed values.
- ``breaker``: a circuit breaker per instance. (The cap on requests in flight per instance
  is the daemon's, across all daemons: ``scheduler_daemon.daemon.instance_gate``.)
- ``client``: the HTTP client (retries, refresh-and-retry, a look before resending a lost
  create).
- ``errors``: what can go wrong, each with a one-line message free of secrets.
- ``settings``: the executor's settings and their defaults, held by ``config`` (imports
  nothing of the project).
- ``observer``: what the client, tokens and breakers report (HTTP answers, token refreshes,
  circuit states) by direct calls; the daemon's metrics implement it.
- ``fake``: a real HTTP fake of AMC on loopback, for the demo, tests and benches.

The executor that plugs this into the daemon is ``scheduler_daemon.executors.amc``.
"""

from __future__ import annotations

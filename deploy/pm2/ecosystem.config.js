// PM2 ecosystem file for scheduler-daemon: the alternative to the systemd units in
// deploy/systemd for hosts that already run PM2. Install and operate: docs/deploy.md.
//
//   pm2 start deploy/pm2/ecosystem.config.js
//   pm2 save                       # remember it across `pm2 resurrect` / reboots
//   pm2 logs scheduler-daemon      # JSON lines, one event per line
//   pm2 logs scheduler-api         # the REST API's (the second app below)
//
// Settings come from the env block below, the environment PM2 itself was started with, and
// /etc/scheduler-daemon/scheduler-daemon.env, which the daemon reads itself when it exists
// (as every scheduler-daemon command does; SCHEDULER_ENV_FILE names another file). A variable
// in the environment wins over the file. Put the secret one, SCHEDULER_DATABASE_URL, in that
// file (readable by PM2's user) rather than in this one.
//
// Differences from systemd to know about: PM2 has no readiness or watchdog protocol, so a
// tick that hangs is not restarted (run the health check from cron: scripts/check_daemon_health);
// and PM2 stops with SIGINT, which the daemon handles exactly like SIGTERM.

"use strict";

// The checkout whose virtualenv holds the daemon (the same convention as the systemd units).
const INSTALL_DIR = process.env.SCHEDULER_INSTALL_DIR || "/opt/scheduler-daemon";

// Graceful shutdown budget, seconds; keep it equal to the daemon's SCHEDULER_SHUTDOWN_GRACE.
const SHUTDOWN_GRACE_SECONDS = 30;

module.exports = {
  apps: [
    {
      // The name in `pm2 ls`, `pm2 logs scheduler-daemon`, `pm2 restart scheduler-daemon`.
      name: "scheduler-daemon",
      // The console script the venv installed: PM2 executes it directly.
      script: `${INSTALL_DIR}/.venv/bin/scheduler-daemon`,
      // `scheduler-daemon run`: the long-running daemon (not `--once`, which is for cron).
      args: ["run"],
      // Not a Node.js script: exec the file itself (its shebang names the venv's Python).
      interpreter: "none",
      // A plain child process; PM2's cluster mode only works for Node.js.
      exec_mode: "fork",
      // One daemon. For more on this host raise it: each instance is a separate process
      // with its own worker id (host:pid:random), all coordinating through the database.
      // Run several against PostgreSQL (SCHEDULER_DATABASE_URL): on the embedded default
      // they would share one server that lives and dies with whichever started it.
      instances: 1,
      // Where relative paths resolve; the daemon itself uses none.
      cwd: INSTALL_DIR,

      // Restart the daemon whenever it exits, cleanly or not: it is meant to run forever.
      autorestart: true,
      // Wait 5 s before a restart, so a database outage at start-up is not hammered.
      restart_delay: 5000,
      // A run shorter than this counts as a failed start (bad configuration, database or
      // schema not ready: the daemon exits within seconds, exit code 2)...
      min_uptime: "10s",
      // ...and after this many failed starts in a row PM2 gives up (status "errored") instead
      // of looping forever on a configuration error; `pm2 restart` after fixing it. PM2 only
      // counts them in the first min_uptime * max_restarts (100 s) after `pm2 start`; later
      // crashes are always restarted.
      max_restarts: 10,
      // Milliseconds between SIGINT and SIGKILL. Above the grace period, plus 10 s to mark
      // the worker stopped (the connect timeout) and 5 s to stop an embedded PostgreSQL.
      // Past it the daemon is killed and the other daemons take its slots over after
      // worker_dead_after (30 s) instead of at once.
      kill_timeout: (SHUTDOWN_GRACE_SECONDS + 15) * 1000,
      // Signal the daemon's PID only: shutting down is its job, including the embedded
      // PostgreSQL, which it stops after draining (pg_ctl starts that server in a session
      // of its own, so a process-group signal would not reach it anyway).
      treekill: false,
      // Restarting on file changes makes no sense for a daemon deployed by upgrades.
      watch: false,

      // stdout (the JSON log lines) goes here; rotate it with pm2-logrotate.
      out_file: "/var/log/scheduler-daemon/out.log",
      // stderr (start-up errors, tracebacks) goes here.
      error_file: "/var/log/scheduler-daemon/error.log",
      // With several instances, one file for all of them instead of one per instance
      // (each JSON line carries its worker_id).
      merge_logs: true,
      // No PM2 timestamp prefix: every JSON line has its own UTC "timestamp", and a prefix
      // would break `jq` and log shippers that read one JSON object per line.
      time: false,

      // The daemon's settings (docs/config.md, "Settings"); PM2's own environment is
      // inherited. These win over the env file: leave a setting out to take the file's.
      env: {
        // One JSON object per line, whatever PM2 does with the terminal.
        SCHEDULER_LOG_FORMAT: "json",
        // info is the right level for production; debug shows every claim race.
        SCHEDULER_LOG_LEVEL: "info",
        // Seconds in-flight dispatches get on SIGINT; kill_timeout above follows it.
        SCHEDULER_SHUTDOWN_GRACE: String(SHUTDOWN_GRACE_SECONDS),
        // On a fatal signal, Python prints every thread's stack to error_file.
        PYTHONFAULTHANDLER: "1",
        // Unbuffered stdout/stderr for whatever is not a log line (start-up errors);
        // structlog already flushes every line it writes.
        PYTHONUNBUFFERED: "1",
      },
    },
    {
      // The REST API (`scheduler-daemon serve`, docs/api.md): `pm2 logs scheduler-api`. It
      // never runs a schedule; remove this entry on hosts that only run daemons.
      name: "scheduler-api",
      // The same console script as the daemon.
      script: `${INSTALL_DIR}/.venv/bin/scheduler-daemon`,
      // Listens on 127.0.0.1:8080 unless SCHEDULER_HOST / SCHEDULER_PORT say otherwise.
      args: ["serve"],
      // Not a Node.js script: exec the file itself.
      interpreter: "none",
      // A plain child process.
      exec_mode: "fork",
      // One process: it serves many requests at once on its own threads. Several would need
      // one port each (SCHEDULER_PORT) behind a proxy.
      instances: 1,
      // Where relative paths resolve; the API itself uses none.
      cwd: INSTALL_DIR,
      // Restart whenever it exits.
      autorestart: true,
      // Wait 5 s before a restart, so a database outage at start-up is not hammered.
      restart_delay: 5000,
      // A run shorter than this counts as a failed start (a port in use, a bad setting).
      min_uptime: "10s",
      // After this many failed starts in a row PM2 gives up instead of looping.
      max_restarts: 10,
      // Milliseconds between SIGINT and SIGKILL: requests in flight finish well within it.
      kill_timeout: 30000,
      // Signal the API's PID only; it stops an embedded PostgreSQL it started itself.
      treekill: false,
      // No restarts on file changes.
      watch: false,
      // stdout: one JSON line per request and event.
      out_file: "/var/log/scheduler-daemon/api-out.log",
      // stderr: start-up errors.
      error_file: "/var/log/scheduler-daemon/api-error.log",
      // No PM2 timestamp prefix: every JSON line has its own.
      time: false,
      // The API's settings (docs/api.md); the env file's SCHEDULER_DATABASE_URL is shared
      // with the daemon.
      env: {
        // One JSON object per line.
        SCHEDULER_LOG_FORMAT: "json",
        // info logs one line per request.
        SCHEDULER_LOG_LEVEL: "info",
        // Unbuffered output for whatever is not a log line.
        PYTHONUNBUFFERED: "1",
      },
    },
  ],
};

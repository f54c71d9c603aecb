# Sourced by the operator scripts: sets $bin to the scheduler-daemon to run.
# $SCHEDULER_DAEMON_BIN when set, else .venv/bin/scheduler-daemon in the project; when that
# is not executable, the one on PATH.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SCHEDULER_DAEMON_BIN:-$root/.venv/bin/scheduler-daemon}"
[ -x "$bin" ] || bin="$(command -v scheduler-daemon)"

"""``scheduler-daemon demo``: see it work in seconds, with nothing but this package."""

from __future__ import annotations

import sys
import threading

import click
from sqlalchemy import Engine

from scheduler_daemon.amc.fake.server import FakeAmcServer
from scheduler_daemon.cli.common import CliState
from scheduler_daemon.cli.run import open_scheduler
from scheduler_daemon.clock import SystemClock
from scheduler_daemon.config import LogFormat
from scheduler_daemon.daemon.loop import install_signal_handlers, run_loop
from scheduler_daemon.daemon.scheduler import Scheduler
from scheduler_daemon.demo import RunPrinter, demo_settings, make_demo_engine, seed, stop
from scheduler_daemon.embedded import embedded_database
from scheduler_daemon.executors import build_amc_executor
from scheduler_daemon.log import configure_logging


def _stop_both(stop: threading.Event, wake: threading.Event) -> None:
    stop.set()
    wake.set()


def _run_demo(scheduler: Scheduler, engine: Engine, grace: float, seconds: float | None) -> None:
    """The loop, printing each run, until Ctrl-C or ``seconds``."""
    stop, wake = threading.Event(), scheduler.wake
    restore = install_signal_handlers(stop, wake)
    printer = RunPrinter(engine, stop, click.echo)
    printer.start()
    timer = threading.Timer(seconds, _stop_both, (stop, wake)) if seconds else None
    if timer:
        timer.start()
    try:
        run_loop(scheduler, stop, wake, grace=grace)
    finally:
        stop.set()
        if timer:
            timer.cancel()
        printer.join(5)
        restore()


NEXT_STEPS = """\
demo stopped. Its schedules are kept, disabled, with their runs, in the embedded database:
  scheduler-daemon schedules list
  scheduler-daemon runs list --schedule 'demo: every 10 seconds'
  scheduler-daemon schedules show 'demo: every minute'
  scheduler-daemon workflows list"""


@click.command("demo")
@click.option("--seconds", type=click.FloatRange(min=1), help="Stop by itself after this long.")
@click.pass_obj
def demo_command(state: CliState, /, seconds: float | None) -> None:
    """Run sample schedules against a local fake AMC; prints every run. Ctrl-C stops it."""
    settings = state.settings()
    configure_logging(LogFormat.CONSOLE, "warning", stream=sys.stderr)
    if settings.database_url is not None:
        click.echo("the demo uses the embedded database, not SCHEDULER_DATABASE_URL", err=True)
    with embedded_database(settings.data_dir) as url:
        click.echo(f"embedded PostgreSQL: data in {settings.data_dir}")
        engine = make_demo_engine(url, settings)
        try:
            with FakeAmcServer(pending_seconds=2.0, running_seconds=3.0) as amc:
                clock = SystemClock()
                schedule_ids = seed(engine, amc, clock.now())
                click.echo(
                    f"fake AMC at {amc.base_url}; schedules: every 10 s, every minute, nightly"
                )
                click.echo("each run is printed as it happens; Ctrl-C stops the demo")
                configured = demo_settings(settings, amc)
                executor = build_amc_executor(configured)
                try:
                    with open_scheduler(engine, configured, executor, clock) as scheduler:
                        _run_demo(scheduler, engine, configured.shutdown_grace, seconds)
                finally:
                    executor.close()
                    stop(engine, schedule_ids)
        finally:
            engine.dispose()
    click.echo(NEXT_STEPS)

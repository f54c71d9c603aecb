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
from scheduler_daemon.demo import RunPrinter, demo_database, demo_settings, make_demo_engine, seed
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


@click.command("demo")
@click.option("--seconds", type=click.FloatRange(min=1), help="Stop by itself after this long.")
@click.pass_obj
def demo_command(state: CliState, /, seconds: float | None) -> None:
    """Run sample schedules against a local fake AMC; prints every run. Ctrl-C stops it."""
    settings = state.settings()
    configure_logging(LogFormat.CONSOLE, "warning", stream=sys.stderr)
    with embedded_database(settings.data_dir) as admin_url, demo_database(admin_url) as url:
        click.echo(f"embedded PostgreSQL: data in {settings.data_dir} (database scheduler_demo)")
        engine = make_demo_engine(url, settings)
        with FakeAmcServer(pending_seconds=2.0, running_seconds=3.0) as amc:
            click.echo(f"fake AMC at {amc.base_url}; schedules: every 10 s, every minute, nightly")
            clock = SystemClock()
            seed(engine, amc, clock.now())
            configured = demo_settings(settings, amc)
            executor = build_amc_executor(configured)
            try:
                with open_scheduler(engine, configured, executor, clock) as scheduler:
                    _run_demo(scheduler, engine, configured.shutdown_grace, seconds)
            finally:
                executor.close()
                engine.dispose()
    click.echo("demo stopped")

"""The pure time engine: parse, validate and preview schedules; compute their fire times.

Nothing here reads a clock, touches the database or does I/O; every instant is passed in.
"""

from __future__ import annotations

from scheduler_daemon.timing.advice import clock_changes, dst_warnings, warnings
from scheduler_daemon.timing.cron_spec import CronSpec
from scheduler_daemon.timing.describe import describe
from scheduler_daemon.timing.errors import TimingError
from scheduler_daemon.timing.interval import IntervalSpec, format_every
from scheduler_daemon.timing.limits import (
    COUNT_CAP,
    DEFAULT_MIN_INTERVAL_SECONDS,
    MAX_EXPRESSION_LENGTH,
    SEARCH_HORIZON_YEARS,
)
from scheduler_daemon.timing.preview import (
    PreviewEntry,
    preview,
    preview_as_dict,
    render_preview_text,
)
from scheduler_daemon.timing.schedules import (
    interval_spec,
    next_fire_times,
    parse_spec,
    validate,
)
from scheduler_daemon.timing.spec import ScheduleSpec
from scheduler_daemon.timing.zones import fixed_offset_warning

__all__ = [
    "COUNT_CAP",
    "DEFAULT_MIN_INTERVAL_SECONDS",
    "MAX_EXPRESSION_LENGTH",
    "SEARCH_HORIZON_YEARS",
    "CronSpec",
    "IntervalSpec",
    "PreviewEntry",
    "ScheduleSpec",
    "TimingError",
    "clock_changes",
    "describe",
    "dst_warnings",
    "fixed_offset_warning",
    "format_every",
    "interval_spec",
    "next_fire_times",
    "parse_spec",
    "preview",
    "preview_as_dict",
    "render_preview_text",
    "validate",
    "warnings",
]

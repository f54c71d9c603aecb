"""The JSON body of AMC's create-execution request, built from a run's merged parameters.

A run's parameters are one flat object (workflow defaults, then schedule defaults, then a
manual run's overrides; a null value removes a default). A few keys are reserved for the
request itself; every other key is a workflow input parameter sent in ``parameterValues``:

- ``time_window``: see ``windows``; absent or null: no window (AMC's default applies).
- ``timeout_seconds`` → ``workflowExecutionTimeoutSeconds`` (900 to 86400).
- ``require_synthetic_data``, ``disable_aggregation_controls``, ``dry_run``,
  ``skip_publish`` → the AMC flags of the same meaning (booleans).

A string value may quote ``{slot}``, ``{slot_date}`` and, with a window, ``{window_start}``,
``{window_end}``, ``{window_start_date}``, ``{window_end_date}``, ``{window_last_date}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from scheduler_daemon.amc.windows import KEY as WINDOW_KEY
from scheduler_daemon.amc.windows import render_window, shown, slot_placeholders, zone_named
from scheduler_daemon.errors import SchedulerError

WORKFLOW_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
MIN_TIMEOUT_SECONDS = 900
MAX_TIMEOUT_SECONDS = 86400

_FLAGS = {
    "require_synthetic_data": "requireSyntheticData",
    "disable_aggregation_controls": "disableAggregationControls",
    "dry_run": "dryRun",
    "skip_publish": "skipPublish",
}
TIMEOUT_KEY = "timeout_seconds"
RESERVED_KEYS = frozenset({WINDOW_KEY, TIMEOUT_KEY, *_FLAGS})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WINDOW_PLACEHOLDERS = (
    "window_start",
    "window_end",
    "window_start_date",
    "window_end_date",
    "window_last_date",
)


class ParameterError(SchedulerError):
    """A run parameter is invalid; the message names the key and the offending value."""


def merge_parameters(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers win key by key; a null value removes the key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return {key: value for key, value in merged.items() if value is not None}


def _substitute(name: str, text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        placeholder = match.group(1)
        if placeholder in values:
            return values[placeholder]
        if placeholder in _WINDOW_PLACEHOLDERS:
            problem = f"{{{placeholder}}} needs a {WINDOW_KEY} parameter"
        else:
            known = ", ".join(f"{{{known}}}" for known in (*values, *_WINDOW_PLACEHOLDERS))
            problem = f"unknown placeholder {{{placeholder}}} (known: {known})"
        raise ParameterError(f"{name}={shown(text)}: {problem}")

    return _PLACEHOLDER.sub(replace, text)


def _parameter_value(
    name: str, value: object, placeholders: Callable[[], Mapping[str, str]]
) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return _substitute(name, value, placeholders()) if "{" in value else value
    hint = f"; did you mean {WINDOW_KEY!r}?" if isinstance(value, Mapping) else ""
    raise ParameterError(
        f"{name}={shown(value)}: a workflow parameter must be a string, number or boolean "
        f"(AMC parameterValues are strings){hint}"
    )


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name}={shown(value)}: must be true or false")
    return value


def _timeout(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS
    ):
        raise ParameterError(
            f"{TIMEOUT_KEY}={shown(value)}: must be a whole number of seconds from "
            f"{MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}"
        )
    return value


def build_request_body(
    amc_workflow_id: str, parameters: Mapping[str, Any], slot: datetime, zone: str
) -> dict[str, Any]:
    """The create-execution body for a saved workflow; raises ParameterError or WindowError."""
    if not isinstance(amc_workflow_id, str) or not WORKFLOW_ID_PATTERN.match(amc_workflow_id):
        raise ParameterError(
            f"amc_workflow_id={shown(amc_workflow_id)}: AMC workflow ids are letters, digits, "
            "periods, dashes and underscores"
        )
    body: dict[str, Any] = {"workflowId": amc_workflow_id}
    zone_named(zone)  # a zone that does not exist fails the run, placeholders or not
    window_spec = parameters.get(WINDOW_KEY)
    window = None if window_spec is None else render_window(window_spec, slot, zone)
    if window is not None:
        body.update(window.as_body())

    computed: dict[str, str] = {}

    def placeholders() -> dict[str, str]:
        """Only for values that quote one: the slot's wall time costs more than the rest."""
        if not computed:
            computed.update(slot_placeholders(slot, zone))
            if window is not None:
                computed.update(window.placeholders())
        return computed

    if TIMEOUT_KEY in parameters:
        body["workflowExecutionTimeoutSeconds"] = _timeout(parameters[TIMEOUT_KEY])
    for name, field_name in _FLAGS.items():
        if name in parameters:
            body[field_name] = _flag(name, parameters[name])
    values = {
        name: _parameter_value(name, value, placeholders)
        for name, value in sorted(parameters.items())
        if name not in RESERVED_KEYS and value is not None
    }
    if values:
        body["parameterValues"] = values
    return body

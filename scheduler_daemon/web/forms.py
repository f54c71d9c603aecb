"""What the console's forms send, read into the verbs' arguments; and the verbs' errors, as
messages beside the fields they name.

A form sends text. Here text becomes numbers, JSON and times, and a mistake in it becomes a
message naming the field; the values themselves are checked by the verbs, as for every face,
and their FieldErrors are named as the API names them (which is how the forms name their
fields too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scheduler_daemon.api.problems import field_problem
from scheduler_daemon.errors import FieldError, InputError
from scheduler_daemon.timing import TimingError
from scheduler_daemon.timing.zones import load_zone


@dataclass
class Errors:
    """Messages by field; ``form`` for what concerns the whole form."""

    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, message)

    def add_error(self, exc: InputError) -> None:
        if isinstance(exc, FieldError):
            problem = field_problem(exc)
            self.add(str(problem["field"]), exc.message)
        else:
            self.add("form", str(exc))

    def __bool__(self) -> bool:
        return bool(self.by_field)


def text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _whole_number(form: Mapping[str, Any], name: str, errors: Errors) -> int | None:
    given = text(form, name)
    if not given:
        return None
    try:
        return int(given)
    except ValueError:
        errors.add(name, f"{given!r} is not a whole number")
        return None


def json_object(form: Mapping[str, Any], name: str, errors: Errors) -> dict[str, Any] | None:
    given = text(form, name)
    if not given:
        return None
    try:
        value = json.loads(given)
    except json.JSONDecodeError as exc:
        errors.add(name, f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        return None
    if not isinstance(value, dict):
        errors.add(name, 'must be a JSON object, e.g. {"lookback_days": 7}')
        return None
    return value


def _instant(form: Mapping[str, Any], name: str, errors: Errors) -> datetime | None:
    given = text(form, name)
    if not given:
        return None
    try:
        moment = datetime.fromisoformat(given)
    except ValueError:
        errors.add(name, f"{given!r} is not a date and time such as 2027-03-14T09:00:00Z")
        return None
    if moment.tzinfo is None:
        errors.add(name, f"{given!r} has no UTC offset: add one, e.g. Z or +01:00")
        return None
    return moment


def local_instant(
    form: Mapping[str, Any], name: str, timezone: str, errors: Errors
) -> datetime | None:
    """A date and time typed in a schedule's zone (an HTML datetime-local field)."""
    given = text(form, name)
    if not given:
        return None
    try:
        wall = datetime.fromisoformat(given)
    except ValueError:
        errors.add(name, f"{given!r} is not a date and time such as 2027-03-14T09:00")
        return None
    if wall.tzinfo is not None:
        return wall
    try:
        return load_zone(timezone).tz.localize(wall)
    except TimingError as exc:
        errors.add(name, str(exc))
        return None


def schedule_definition(form: Mapping[str, Any], errors: Errors) -> dict[str, Any]:
    """The definition a schedule form gives, as the verbs name it (``expression`` for the
    spec); what the form leaves blank is left out."""
    given: dict[str, Any] = {}
    for name in ("name", "workflow", "spec", "timezone", "misfire_policy", "overlap_policy"):
        value = text(form, name)
        if value:
            given["expression" if name == "spec" else name] = value
    for name in ("misfire_grace_seconds", "max_catchup_runs"):
        number = _whole_number(form, name, errors)
        if number is not None:
            given[name] = number
    anchor = _instant(form, "anchor", errors)
    if anchor is not None:
        given["anchor"] = anchor
    parameters = json_object(form, "parameters", errors)
    given["parameters"] = parameters or {}
    for required, label in (("name", "name"), ("workflow", "workflow"), ("expression", "spec")):
        if required not in given:
            errors.add(label, "required")
    return given

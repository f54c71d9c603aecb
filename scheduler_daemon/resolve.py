"""Turn a run into the request an executor sends: workflow → AMC instance → account.

Scheduled and manual runs both come through ``resolve``; nothing here reads the current
time, so two runs of one slot with the same parameters resolve to the same request.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

import structlog

from scheduler_daemon.amc.body import ParameterError, build_request_body, merge_parameters
from scheduler_daemon.amc.windows import WindowError
from scheduler_daemon.domain import ClaimedRun, RunContext
from scheduler_daemon.errors import SchedulerError
from scheduler_daemon.executors.base import RunRequest

log = structlog.get_logger("scheduler_daemon.resolve")

# Observed shapes, not documented formats: an unusual instance id only warns; an entity id
# must look like one unless the caller says otherwise (AMC answers a bad one with a bare 403).
INSTANCE_ID_USUAL = re.compile(r"^amc[a-z0-9]{8}$")
INSTANCE_ID_ALLOWED = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
ENTITY_ID = re.compile(r"^ENTITY[A-Z0-9]+$")


class ResolutionError(SchedulerError):
    """A run cannot be turned into an AMC request; nothing was sent."""


def _looks_like_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _context_problem(
    instance_id: Any,
    entity_id: Any,
    marketplace_id: Any,
    amc_workflow_id: Any,
    require_entity_prefix: bool,
) -> str | None:
    """Why the workflow's AMC identifiers cannot be sent, or None."""
    if not instance_id or not isinstance(instance_id, str):
        return "its AMC instance is missing"
    problem = _instance_id_problem(instance_id)
    if problem:
        return problem
    if not entity_id:
        return f"the AMC account (entity id) of instance {instance_id!r} is missing"
    if require_entity_prefix and not ENTITY_ID.match(entity_id):
        return (
            f"entity id {entity_id!r} of instance {instance_id!r} does not look like an "
            "AMC account id ('ENTITY' and capitals/digits, amc_accounts.account_id)"
        )
    if not marketplace_id:
        return (
            f"the marketplace of AMC account {entity_id!r} is missing "
            "(amc_accounts.marketplace_id, such as 'ATVPDKIKX0DER')"
        )
    if not amc_workflow_id:
        return "its AMC workflow id (amc_workflow_id) is missing"
    return None


def instance_id_problem(instance_id: str) -> str | None:
    """What is wrong with an AMC instance id (as the catalog commands check it), or None."""
    return _instance_id_problem(instance_id)


@functools.lru_cache(maxsize=1024)
def _instance_id_problem(instance_id: str) -> str | None:
    """What is wrong with an instance id, or None; once per id (every run of a burst asks)."""
    if _looks_like_uuid(instance_id):
        return (
            f"AMC instance id {instance_id!r} is a UUID; AMC needs its own string id "
            "(amc_instances.instance_id, such as 'amc1alal2aa')"
        )
    if not INSTANCE_ID_ALLOWED.match(instance_id):
        return (
            f"AMC instance id {instance_id!r} is not an AMC instance id "
            "(letters, digits, '.', '-', '_')"
        )
    if not INSTANCE_ID_USUAL.match(instance_id):
        _warn_unusual_instance_id(instance_id)
    return None


@functools.lru_cache(maxsize=1024)
def _warn_unusual_instance_id(instance_id: str) -> None:
    """Once per id, not once per run: it is configuration, not an event."""
    log.warning("amc.instance_id_unusual", instance_id=instance_id)


def _workflow_named(context: RunContext) -> str:
    """The workflow as an error names it (built only for an error: it formats a UUID)."""
    return f"workflow {context.workflow_name!r} ({context.workflow_id})"


def resolve(
    run: ClaimedRun, context: RunContext | None, *, require_entity_prefix: bool = True
) -> RunRequest:
    """Resolve one run from its joined context row; raise ResolutionError naming the problem.

    ``require_entity_prefix``: refuse an entity id that does not look like ``ENTITY…``.
    """
    if context is None or context.workflow_id is None:
        raise ResolutionError(f"run {run.id}: its workflow {run.workflow_id} does not exist")
    instance_id: Any = context.amc_instance_id
    entity_id: Any = context.amc_entity_id
    marketplace_id: Any = context.marketplace_id
    amc_workflow_id: Any = context.amc_workflow_id
    problem = _context_problem(
        instance_id, entity_id, marketplace_id, amc_workflow_id, require_entity_prefix
    )
    if problem:
        raise ResolutionError(f"{_workflow_named(context)}: {problem}")
    timezone = context.timezone or "UTC"
    parameters = merge_parameters(
        context.workflow_parameters,
        context.schedule_parameters,
        run.parameters_override,
    )
    try:
        body = build_request_body(amc_workflow_id, parameters, run.scheduled_for, timezone)
    except (ParameterError, WindowError) as exc:
        raise ResolutionError(f"{_workflow_named(context)}: parameter {exc}") from None
    return RunRequest(
        run_id=run.id,
        schedule_id=run.schedule_id,
        workflow_id=run.workflow_id,
        scheduled_for=run.scheduled_for,
        trigger=run.trigger,
        correlation_id=run.correlation_id,
        amc_workflow_id=amc_workflow_id,
        amc_instance_id=instance_id,
        amc_entity_id=entity_id,
        marketplace_id=marketplace_id,
        parameters=parameters,
        body=body,
        timezone=timezone,
        workflow_name=context.workflow_name,
        region=context.region,
    )

"""Turn a run into the request an executor sends: workflow → AMC instance → account."""

from __future__ import annotations

import uuid
from typing import Any

from scheduler_daemon.db.queries import ClaimedRun
from scheduler_daemon.errors import SchedulerError
from scheduler_daemon.executors.base import RunRequest


class ResolutionError(SchedulerError):
    """A run cannot be turned into an AMC request; nothing was sent."""


def _looks_like_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def resolve(run: ClaimedRun, context: dict[str, Any] | None) -> RunRequest:
    """Resolve one run from its joined context row; raise ResolutionError naming the problem."""
    if context is None or context.get("workflow_id") is None:
        raise ResolutionError(f"run {run.id}: its workflow {run.workflow_id} does not exist")
    name = f"workflow {context['workflow_name']!r} ({context['workflow_id']})"
    instance_id = context.get("amc_instance_id")
    if not instance_id:
        raise ResolutionError(f"{name}: its AMC instance is missing")
    if _looks_like_uuid(instance_id):
        raise ResolutionError(
            f"{name}: AMC instance id {instance_id!r} is a UUID; AMC needs its own string id"
        )
    entity_id = context.get("amc_entity_id")
    if not entity_id:
        raise ResolutionError(
            f"{name}: the AMC account (entity id) of instance {instance_id!r} is missing"
        )
    parameters = {
        **(context.get("workflow_parameters") or {}),
        **(context.get("schedule_parameters") or {}),
        **(run.parameters_override or {}),
    }
    return RunRequest(
        run_id=run.id,
        schedule_id=run.schedule_id,
        workflow_id=run.workflow_id,
        scheduled_for=run.scheduled_for,
        trigger=run.trigger,
        correlation_id=run.correlation_id,
        amc_workflow_id=context["amc_workflow_id"],
        amc_instance_id=instance_id,
        amc_entity_id=entity_id,
        marketplace_id=context.get("marketplace_id"),
        parameters=parameters,
    )

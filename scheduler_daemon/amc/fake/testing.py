"""Helpers for tests and demos that drive the AMC executor against the fake server."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from scheduler_daemon.amc.fake.server import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_INSTANCE_ID,
    DEFAULT_MARKETPLACE_ID,
    DEFAULT_WORKFLOW_ID,
    FakeAmcServer,
)
from scheduler_daemon.amc.observer import NO_OBSERVER, AmcObserver
from scheduler_daemon.amc.settings import AmcSettings, RetryPolicy
from scheduler_daemon.clock import Clock
from scheduler_daemon.executors.amc import AmcExecutor, make_amc_executor
from scheduler_daemon.executors.base import RunRequest

# Retries in milliseconds instead of seconds; everything else as in production.
FAST_RETRY = RetryPolicy(
    attempts=4, backoff=0.01, backoff_max=0.05, max_retry_after=5.0, lookup_delay=0.0
)


def fast_settings(fake: FakeAmcServer, **overrides: Any) -> AmcSettings:
    settings = AmcSettings(
        api_url=fake.base_url,
        token_url=fake.token_url,
        retry=FAST_RETRY,
        request_timeout=5.0,
        connect_timeout=2.0,
        token_retry_wait=0.01,
    )
    return replace(settings, **overrides)


def fake_executor(
    fake: FakeAmcServer,
    *,
    clock: Clock | None = None,
    observer: AmcObserver = NO_OBSERVER,
    **overrides: Any,
) -> AmcExecutor:
    """An executor wired to the fake with its default credentials and fast retries."""
    return make_amc_executor(
        fake.credentials, fast_settings(fake, **overrides), clock=clock, observer=observer
    )


def run_request(
    scheduled_for: datetime,
    *,
    body: dict[str, Any] | None = None,
    instance_id: str = DEFAULT_INSTANCE_ID,
    entity_id: str = DEFAULT_ACCOUNT_ID,
    marketplace_id: str = DEFAULT_MARKETPLACE_ID,
    workflow_id: str = DEFAULT_WORKFLOW_ID,
    trigger: str = "scheduled",
) -> RunRequest:
    """A resolved run as ``resolve`` would make it, for a saved workflow of the fake."""
    return RunRequest(
        run_id=uuid.uuid4(),
        schedule_id=uuid.uuid4(),
        workflow_id=uuid.uuid4(),
        scheduled_for=scheduled_for,
        trigger=trigger,
        correlation_id=uuid.uuid4(),
        amc_workflow_id=workflow_id,
        amc_instance_id=instance_id,
        amc_entity_id=entity_id,
        marketplace_id=marketplace_id,
        body=body if body is not None else {"workflowId": workflow_id},
    )

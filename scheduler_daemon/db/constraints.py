"""A write refused by a unique constraint, told as the input error it is.

Names (and AMC instance ids) are unique by constraint, so two operators creating the same
name at once cannot both succeed; the loser gets a FieldError naming the field and the value
(taken from PostgreSQL's ``Key (name)=(x) already exists``), not an IntegrityError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

from scheduler_daemon.errors import UniqueFieldError

# constraint: (field, what the row is)
UNIQUE_FIELDS = {
    "uq_amc_accounts_name": ("name", "account"),
    "uq_amc_instances_name": ("name", "instance"),
    "uq_amc_instances_instance_id": ("instance_id", "instance"),
    "uq_workflows_name": ("name", "workflow"),
    "uq_workflow_schedules_name": ("name", "schedule"),
    "uq_api_tokens_name": ("name", "token"),
}
_KEY_DETAIL = re.compile(r"Key \(.*?\)=\((?P<value>.*)\) already exists")


@contextmanager
def unique_fields() -> Iterator[None]:
    """Inside: a unique violation on a guarded constraint becomes a UniqueFieldError."""
    try:
        yield
    except IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        guarded = UNIQUE_FIELDS.get(getattr(diag, "constraint_name", None) or "")
        if guarded is None:
            raise
        field, noun = guarded
        detail = _KEY_DETAIL.search(getattr(diag, "message_detail", None) or "")
        value = detail["value"] if detail else None
        raise UniqueFieldError(
            field, value, f"another {noun} already has the {field.replace('_', ' ')} {value!r}"
        ) from None

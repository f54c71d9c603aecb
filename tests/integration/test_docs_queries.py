"""Every SQL query in the operator docs runs against a migrated database."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

DOCS = Path(__file__).resolve().parents[2] / "docs"
QUERIES = [
    pytest.param(query, id=f"{path.name}:{n}")
    for path in sorted(DOCS.glob("*.md"))
    for n, query in enumerate(re.findall(r"```sql\n(.*?)```", path.read_text(), re.DOTALL))
]


def test_the_docs_have_queries() -> None:
    assert len(QUERIES) >= 15


@pytest.mark.parametrize("query", QUERIES)
def test_query_runs(engine: Engine, query: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(query), {"id": uuid.uuid4()}).all()

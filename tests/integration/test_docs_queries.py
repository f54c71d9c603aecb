"""Every SQL query in README.md and the docs runs against a migrated database."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from tests.acceptance.test_doc_examples import fenced

QUERIES = [pytest.param(block.text, id=block.where) for block in fenced("sql")]


def test_the_docs_have_queries() -> None:
    assert len(QUERIES) >= 20


@pytest.mark.parametrize("query", QUERIES)
def test_query_runs(engine: Engine, query: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(query), {"id": uuid.uuid4()}).all()

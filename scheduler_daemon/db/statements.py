"""Named SQL statements, read from a ``.sql`` file of this package.

A file holds statements one after the other, each introduced by a ``-- name: <name>`` line
and ended by ``;`` at the end of a line. Comment lines and indentation are for the reader and
are not sent: the notes make some statements long, and psycopg caches the parsing of a
statement's placeholders only up to 4,096 characters.
"""

from __future__ import annotations

import importlib.resources
import re

from sqlalchemy import TextClause, text

_NAME = re.compile(r"^-- name: (?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class StatementFileError(Exception):
    pass


def parse_statements(source: str, filename: str = "<sql>") -> dict[str, str]:
    """Each statement's text as sent, by name."""
    statements: dict[str, str] = {}
    matches = list(_NAME.finditer(source))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        name = match["name"]
        body = source[match.end() : following.start() if following else len(source)]
        lines = [line.strip() for line in body.splitlines()]
        sent = "\n".join(line for line in lines if line and not line.startswith("--"))
        if not sent.endswith(";"):
            raise StatementFileError(f"{filename}: statement {name!r} must end with ';'")
        if name in statements:
            raise StatementFileError(f"{filename}: statement {name!r} is named twice")
        statements[name] = sent[:-1]
    return statements


def load_statements(filename: str) -> dict[str, TextClause]:
    """The statements of ``filename``, a file of this package, ready to execute."""
    source = importlib.resources.files(__package__).joinpath(filename).read_text()
    return {name: text(sql) for name, sql in parse_statements(source, filename).items()}

"""Every shell and TOML example in README.md and docs/*.md runs, as written, in document order;
and the docs point at nothing outside the repository.

The conventions, for whoever writes an example:

- An *example* is a fenced block whose language is ``sh``, ``bash``, ``shell``, ``console``
  or ``toml``. Each document's examples run in order, in one temporary working directory,
  against one fresh database of the document's own (``SCHEDULER_DATABASE_URL``, migrated, no
  environment file), with the project's virtualenv first on ``PATH``.
- A block that cannot run in a test carries, on the line right before its fence,
  ``<!-- example not run: REASON -->``. Nothing else opts out: an unmarked example the test
  cannot run fails it.
- Shell blocks run line by line (a trailing ``\\`` continues a line; in ``console`` blocks
  only the ``$ `` lines are commands). Each line must be one ``scheduler-daemon`` command
  (``.venv/bin/scheduler-daemon`` works too; ``. .venv/bin/activate`` is skipped, the
  virtualenv already being on ``PATH``): no pipes, redirections, ``&&`` or ``$`` expansions,
  and nothing that runs until it is stopped (``run`` without ``--once``, ``demo`` without
  ``--seconds``, ``db shell`` without ``-- ARGS``). It must exit 0, or the code its trailing
  comment names: ``scheduler-daemon health   # exits 1: no daemon is running``.
- A ``toml`` block (or a ``sql`` one) is written to the file the prose before it names in
  backquotes (README's ``deployment.toml``, docs/sql.md's ``report.sql``), in the working
  directory, for the shell lines after it; a TOML block whose prose names no file is written
  to ``DOC-LINE.toml``. A TOML file that no later shell line of the document names is
  applied by the test itself: its dry run plans every schedule and changes nothing, ``sync
  FILE`` applies it, and a second dry run then finds nothing left to do.

``sql`` blocks are also queries: tests/integration/test_docs_queries.py runs each one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import NO_ENV_FILE

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent

SHELL = frozenset({"sh", "bash", "shell", "console"})
EXAMPLES = SHELL | {"toml"}
# Fenced languages that are not examples: sql (queries, run by test_docs_queries.py), text
# (output), ini (systemd drop-ins), yaml (Prometheus rules), cron (a crontab), json (an API
# response), and none (the source tree in docs/design.md). A new language must be added to
# one set or the other.
NOT_EXAMPLES = frozenset({"sql", "text", "ini", "yaml", "cron", "json", ""})

NOT_RUN = re.compile(r"^\s*<!-- example not run: (?P<reason>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<language>[^\s`]*)")
NAMED_FILE = re.compile(r"`([\w.-]+\.(?:toml|sql))`")
EXPECTED_EXIT = re.compile(r"\bexits (\d+)\b")
ACTIVATE = re.compile(r"^(?:\.|source) +\.venv/bin/activate$")
LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s")
OPERATOR = re.compile(r"^[();<>|&]+$")
TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, from 1
    end: int  # of the closing fence
    language: str
    lines: tuple[tuple[int, str], ...]  # (line number, text without the fence's indentation)
    not_run: str | None  # the marker's reason
    file_name: str | None  # the file the prose before it names

    @property
    def where(self) -> str:
        return f"{self.document.name}:{self.line}"

    @property
    def text(self) -> str:
        return "".join(f"{text}\n" for _, text in self.lines)


def blocks(document: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its marker and the file its prose names."""
    lines = document.read_text().splitlines()
    found: list[Block] = []
    prose_from = 0
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        assert end is not None, f"{document.name}:{i + 1}: a fence that is never closed"
        body = tuple(
            (n + 1, line.removeprefix(indent)) for n, line in enumerate(lines[i + 1 : end], i + 1)
        )
        marker = NOT_RUN.match(lines[i - 1]) if i > 0 else None
        named = NAMED_FILE.findall("\n".join(lines[prose_from:i]))
        found.append(
            Block(
                document=document,
                line=i + 1,
                end=end + 1,
                language=opening["language"].lower(),
                lines=body,
                not_run=marker["reason"] if marker else None,
                file_name=named[-1] if named else None,
            )
        )
        prose_from = i = end + 1
    return found


def fenced(language: str) -> Iterator[Block]:
    """Every block of one language in README.md and docs/*.md, in order."""
    for document in DOCUMENTS:
        yield from (b for b in blocks(document) if b.language == language)


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its trailing comment (a ``#`` after a space, unquoted)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1 :].strip()
    return line.strip(), ""


@dataclass(frozen=True)
class Command:
    line: int
    text: str  # as the document writes it, comment and all
    argv: list[str] | None  # None: skipped on purpose (activating the virtualenv)
    expected: int
    problem: str | None  # why the test cannot run it, if it cannot


def commands(block: Block) -> list[Command]:
    """A shell block's commands, continuation lines joined."""
    logical: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in block.lines:
        if block.language == "console" and pending is None and not raw.startswith("$ "):
            continue  # output
        text = raw.removeprefix("$ ") if block.language == "console" else raw
        first, joined = (number, text) if pending is None else (pending[0], f"{pending[1]} {text}")
        if joined.rstrip().endswith("\\"):
            pending = (first, joined.rstrip()[:-1].rstrip())
        else:
            pending = None
            logical.append((first, joined))
    if pending is not None:
        logical.append(pending)
    return [c for number, text in logical if (c := command(number, text)) is not None]


def command(number: int, text: str) -> Command | None:
    line, comment = split_comment(text)
    if not line:
        return None
    exit_code = EXPECTED_EXIT.search(comment)
    expected = int(exit_code[1]) if exit_code else 0

    def refused(problem: str) -> Command:
        return Command(number, text.strip(), None, expected, problem)

    if ACTIVATE.match(line):
        return Command(number, text.strip(), None, expected, None)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        return refused(f"cannot be parsed ({exc})")
    if any(OPERATOR.match(t) for t in tokens):
        return refused("is not one command (a pipe, redirection, `&&` or `;`)")
    if re.search(r"[$`]", re.sub(r"'[^']*'", "", line)):
        return refused("needs the shell's expansions (`$`)")
    program, args = tokens[0], tokens[1:]
    if program in {"scheduler-daemon", ".venv/bin/scheduler-daemon"}:
        argv = [str(VENV_BIN / "scheduler-daemon"), *args]
    elif program in {"python", "python3"} and args[:2] == ["-m", "scheduler_daemon"]:
        argv = [sys.executable, *args]
        args = args[2:]
    else:
        return refused(f"runs `{program}`, not scheduler-daemon")
    forever = runs_until_stopped(args)
    if forever:
        return refused(f"runs until it is stopped ({forever})")
    return Command(number, text.strip(), argv, expected, None)


def runs_until_stopped(args: list[str]) -> str | None:
    """Why a scheduler-daemon command line would not end by itself, if it would not."""
    words = list(args)
    while words and words[0].startswith("-"):  # the global options, before the command
        option = words.pop(0)
        if "=" not in option and option in {"--database-url", "--data-dir"} and words:
            words.pop(0)
    if words[:1] == ["run"] and "--once" not in words:
        return "`run` without `--once`"
    if words[:1] == ["demo"] and not any(w.startswith("--seconds") for w in words):
        return "`demo` without `--seconds`"
    if words[:2] == ["db", "shell"] and "--" not in words:
        return "`db shell` without `-- PSQL ARGS`: an interactive psql"
    return None


def test_every_fenced_block_has_a_known_language() -> None:
    unknown = [
        f"{b.where}: ```{b.language}"
        for document in DOCUMENTS
        for b in blocks(document)
        if b.language not in EXAMPLES | NOT_EXAMPLES
    ]
    assert not unknown, "examples (EXAMPLES) or not (NOT_EXAMPLES)? " + ", ".join(unknown)


def test_code_is_fenced() -> None:
    """An indented code block has no language, so no test could tell an example in it."""
    problems = []
    for document in DOCUMENTS:
        lines = document.read_text().splitlines()
        fences = {n for b in blocks(document) for n in range(b.line, b.end + 1)}
        for number, line in enumerate(lines, 1):
            if number in fences or not line.startswith("    ") or lines[number - 2].strip():
                continue
            before = next((p for p in reversed(lines[: number - 1]) if p.strip()), "")
            if not before.startswith(" ") and not LIST_ITEM.match(before):
                problems.append(f"{document.name}:{number}: fence it: {line.strip()}")
    assert not problems, "\n".join(problems)


def test_not_run_markers_sit_on_examples_and_give_a_reason() -> None:
    problems = []
    for document in DOCUMENTS:
        lines = document.read_text().splitlines()
        marked = {b.line - 1 for b in blocks(document) if b.not_run is not None}
        for number, line in enumerate(lines, 1):
            if "example not run" in line and number not in marked:
                problems.append(f"{document.name}:{number}: not right before a fence: {line}")
        for b in blocks(document):
            if b.not_run is not None and b.language not in EXAMPLES:
                problems.append(f"{b.where}: marks a ```{b.language} block, not an example")
            if b.not_run is not None and len(b.not_run) < 10:
                problems.append(f"{b.where}: say why it is not run: {b.not_run!r}")
    assert not problems, "\n".join(problems)


def test_the_docs_have_examples_that_run() -> None:
    running = {
        b.document.name
        for document in DOCUMENTS
        for b in blocks(document)
        if b.language in EXAMPLES and b.not_run is None
    }
    assert {"README.md", "config.md", "sql.md"} <= running


class Reader:
    """One document's examples, run as a reader would, in one working directory."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.env = (
            {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
            | NO_ENV_FILE
            | {
                "SCHEDULER_DATABASE_URL": database_url,
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        self.failures: list[str] = []

    def run(self, where: str, text: str, argv: list[str], expected: int = 0) -> str:
        result = subprocess.run(
            argv,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if result.returncode != expected or "Traceback" in result.stderr:
            self.failures.append(
                f"{where}: `{text}` exited {result.returncode}, expected {expected}\n"
                f"  stdout: {result.stdout.strip()}\n  stderr: {result.stderr.strip()}"
            )
        return result.stdout

    def apply(self, block: Block, path: str) -> None:
        """A TOML file nothing in the document applies: dry run, apply, nothing left to do."""
        cli = [str(VENV_BIN / "scheduler-daemon"), "sync", path]
        dry = [*cli, "--dry-run", "--json"]
        planned = self.run(block.where, f"sync {path} --dry-run --json", dry)
        if self.failures:
            return
        keys = [s["key"] for s in tomllib.loads(block.text).get("schedules", [])]
        if sorted(to_do(planned)["create"]) != sorted(keys):
            self.failures.append(f"{block.where}: the dry run does not create {keys}: {planned}")
        again = self.run(block.where, f"sync {path} --dry-run --json", dry)
        if to_do(again) != to_do(planned):
            self.failures.append(f"{block.where}: the dry run of {path} changed something")
        self.run(block.where, f"sync {path}", cli)
        left = to_do(self.run(block.where, f"sync {path} --dry-run --json", dry))
        if any(left.values()):
            self.failures.append(f"{block.where}: after `sync {path}`, still to do: {left}")


def to_do(plan: str) -> dict[str, list[str]]:
    """What a ``sync --json`` plan would change, by name (a dry run's new ids differ)."""
    parsed = json.loads(plan or "{}")
    return {
        "catalog": [
            f"{c['action']} {c['kind']} {c['name']!r}"
            for c in parsed.get("catalog", [])
            if c["action"] != "unchanged"
        ],
        **{
            action: [e["key"] for e in parsed.get(action, [])]
            for action in ("create", "update", "disable")
        },
    }


def runnable(document: Path) -> list[Block]:
    return [b for b in blocks(document) if b.language in EXAMPLES and b.not_run is None]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_examples_run(document: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    every = blocks(document)
    examples = runnable(document)
    # The test cannot run these: nothing in the document may be left unmarked.
    cannot = [
        f"{b.where}: line {c.line}: `{c.text}` {c.problem}: make it runnable, or mark the "
        "block <!-- example not run: REASON -->"
        for b in examples
        if b.language in SHELL
        for c in commands(b)
        if c.problem
    ]
    assert not cannot, "\n".join(cannot)
    if not examples:
        return

    workdir = tmp_path / "work"
    workdir.mkdir()
    reader = Reader(workdir, request.getfixturevalue("database_url"))
    for n, block in enumerate(every):
        if block.language in {"toml", "sql"} and block.file_name is not None:
            (workdir / block.file_name).write_text(block.text)
        if block not in examples:
            continue
        if block.language == "toml":
            path = block.file_name or f"{document.stem}-{block.line}.toml"
            if block.file_name is None:
                (workdir / path).write_text(block.text)
            later = [
                c.argv
                for b in every[n + 1 :]
                if b in examples and b.language in SHELL
                for c in commands(b)
                if c.argv
            ]
            if not any(path in argv for argv in later):
                reader.apply(block, path)
            continue
        for c in commands(block):
            if c.argv is not None:
                reader.run(f"{document.name}:{c.line}", c.text, c.argv, c.expected)
    assert not reader.failures, "\n".join(reader.failures)


# Links and paths: the docs are self-contained.

LINK = re.compile(r"\]\(([^)\s]+)\)|<(\w+://[^>]+)>")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:docs|deploy|scripts|tests|bench|scheduler_daemon|migrations)/[\w./@-]*\w)"
)
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/home/|/Users/|/root/|/tmp/|file://)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_nothing_points_outside_the_repository(document: Path) -> None:
    problems = []
    for number, line in enumerate(document.read_text().splitlines(), 1):
        where = f"{document.name}:{number}"
        for relative, absolute in LINK.findall(line):
            target = relative or absolute
            if "://" in target or target.startswith(("/", "mailto:")):
                problems.append(f"{where}: a link out of the repository: {target}")
                continue
            resolved = (document.parent / target.split("#")[0]).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                problems.append(f"{where}: a link to nothing in the repository: {target}")
        for path in REPO_PATH.findall(line):
            if not (ROOT / path).exists():
                problems.append(f"{where}: {path} is not in the repository")
        problems += [f"{where}: a path on some machine: {m}" for m in MACHINE_PATH.findall(line)]
        if "../" in line:
            problems.append(f"{where}: a path out of the docs: {line.strip()}")
    assert not problems, "\n".join(problems)

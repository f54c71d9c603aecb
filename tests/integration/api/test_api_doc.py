"""docs/api.md's curl examples, each sent as written, in order, to the API on a database of its
own: a request the document shows answers 2xx, or the status its ``# answers NNN`` comment
names."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from tests.integration.api.conftest import Api

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
BASE = "http://127.0.0.1:8080"
ANSWERS = re.compile(r"#\s*answers (\d{3})")


@dataclass(frozen=True)
class Request:
    line: str
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    expected: int | None


def curl_lines() -> list[str]:
    text = DOC.read_text()
    block = text.split("tests/integration/api/test_api_doc.py runs each request -->\n```sh\n")[1]
    block = block.split("\n```")[0]
    return block.replace("\\\n", " ").splitlines()


def parse(line: str, variables: dict[str, str]) -> Request:
    answers = ANSWERS.search(line)
    command = line[: answers.start()] if answers else line
    for name, value in variables.items():
        command = command.replace(f"${name}", value)
    words = shlex.split(command)
    assert words[0] == "curl", line
    method, headers, body, url = "GET", {}, None, None
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(": ")
            headers[name] = value
        elif word == "-d":
            body = next(rest)
        elif word in {"-s", "-i"}:
            continue
        else:
            url = word
    assert url is not None, line
    assert url.startswith(BASE), line
    return Request(
        line, method, url.removeprefix(BASE), headers, body, int(answers[1]) if answers else None
    )


def test_every_curl_example_answers_as_the_document_says(client: TestClient, api: Api) -> None:
    token = api.headers["Authorization"].removeprefix("Bearer ")
    variables = {"TOKEN": token}
    sent = 0
    for line in curl_lines():
        if "=" in line.split()[0]:  # API=…
            name, _, value = line.partition("=")
            variables = {name: value, **variables}
            continue
        request = parse(line, variables)
        response = client.request(
            request.method, request.path, headers=request.headers, content=request.body
        )
        if request.expected is None:
            assert 200 <= response.status_code < 300, (request.line, response.text)
        else:
            assert response.status_code == request.expected, (request.line, response.text)
        sent += 1
    assert sent >= 10

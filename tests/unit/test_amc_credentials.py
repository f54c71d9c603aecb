"""Credentials from an environment mapping (values or *_FILE), and secrets that never print."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from scheduler_daemon.amc.credentials import CredentialsError, credentials_from_env
from scheduler_daemon.amc.secret import Secret, scrub
from scheduler_daemon.errors import ConfigError

ENV = {
    "SCHEDULER_AMC_CLIENT_ID": "amzn1.application-oa2-client.abc",
    "SCHEDULER_AMC_CLIENT_SECRET": "s3cr3t-value",
    "SCHEDULER_AMC_REFRESH_TOKEN": "Atzr|refresh-value",
}


def test_values_from_the_environment() -> None:
    credentials = credentials_from_env(ENV)
    assert credentials.client_id == "amzn1.application-oa2-client.abc"
    assert credentials.client_secret.reveal() == "s3cr3t-value"
    assert credentials.refresh_token.reveal() == "Atzr|refresh-value"


def test_file_variants_are_read_and_stripped(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    env = dict(ENV)
    del env["SCHEDULER_AMC_CLIENT_SECRET"]
    env["SCHEDULER_AMC_CLIENT_SECRET_FILE"] = str(secret_file)
    assert credentials_from_env(env).client_secret.reveal() == "from-a-file"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SCHEDULER_AMC_CLIENT_ID": None}, "SCHEDULER_AMC_CLIENT_ID: is not set (nor SCHEDULER_AMC_CLIENT_ID_FILE)"),
        ({"SCHEDULER_AMC_REFRESH_TOKEN": "  "}, "SCHEDULER_AMC_REFRESH_TOKEN: is empty"),
        ({"SCHEDULER_AMC_CLIENT_SECRET_FILE": "/x"}, "SCHEDULER_AMC_CLIENT_SECRET: set either SCHEDULER_AMC_CLIENT_SECRET or SCHEDULER_AMC_CLIENT_SECRET_FILE, not both"),
    ],
)  # fmt: skip
def test_errors_name_the_variable(change: dict[str, str | None], message: str) -> None:
    env = {k: v for k, v in (ENV | change).items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        credentials_from_env(env)
    assert str(caught.value) == message
    assert "s3cr3t" not in str(caught.value)


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "SCHEDULER_AMC_CLIENT_SECRET"}
    missing = tmp_path / "missing"
    with pytest.raises(
        CredentialsError,
        match=r"^SCHEDULER_AMC_CLIENT_SECRET_FILE: cannot read '.*missing': No such file",
    ):
        credentials_from_env(env | {"SCHEDULER_AMC_CLIENT_SECRET_FILE": str(missing)})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(
        CredentialsError, match=r"^SCHEDULER_AMC_CLIENT_SECRET_FILE: '.*empty' is empty$"
    ):
        credentials_from_env(env | {"SCHEDULER_AMC_CLIENT_SECRET_FILE": str(empty)})


def test_nothing_prints_a_secret() -> None:
    credentials = credentials_from_env(ENV)
    for text in (
        repr(credentials),
        str(credentials),
        f"{credentials}",
        f"{credentials.client_secret}",
    ):
        assert "s3cr3t" not in text
        assert "refresh-value" not in text
    assert repr(credentials.client_secret) == str(credentials.refresh_token) == "***"
    assert f"{credentials.client_secret:>20}" == "***"
    with pytest.raises(TypeError):
        pickle.dumps(credentials.client_secret)


def test_secret_compares_by_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert len({Secret("a"), Secret("a")}) == 1
    assert not Secret("")


def test_scrub_masks_known_values_and_lwa_tokens() -> None:
    text = "echo s3cr3t-value and Bearer Atza|IQEBLjAsAhRm-xyz, and Atzr|other;"
    assert scrub(text, [Secret("s3cr3t-value")]) == "echo *** and Bearer ***, and ***;"


def test_the_real_environment_is_not_read() -> None:
    assert "SCHEDULER_AMC_CLIENT_ID" not in os.environ  # the root conftest strips SCHEDULER_*
    with pytest.raises(CredentialsError):
        credentials_from_env({})

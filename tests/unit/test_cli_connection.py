"""How the client commands read their connection flags: --secure DIR as a shorthand, explicit flags and env vars
over it, and one-line usage errors for files that cannot work (no servers involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceedit.cli.argtypes import UsageError
from faceedit.cli.connection import connection
from faceedit.cli.main import build_parser
from faceedit.devstack.devpki import write_dev_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return write_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("command", [["edit", "x.png", "-e", "hair=x", "-o", "y.png"], ["parse", "x.png"],
                                     ["attributes"], ["bench"]])  # fmt: skip
def test_secure_dir_gives_tls_mtls_and_the_token(pki, command: list[str]) -> None:
    to = connection(build_parser().parse_args([*command, "--secure", str(pki.directory)]))
    assert to.tls is not None and to.tls.mutual and to.tls.ca_path == pki.ca_cert
    assert to.token == pki.read_token() and to.server == "127.0.0.1:50051"


def test_plaintext_without_credentials_and_env_fallbacks(pki, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = connection(build_parser().parse_args(["attributes"]))
    assert plain.tls is None and plain.token is None
    monkeypatch.setenv("FACEEDIT_CA", str(pki.ca_cert))
    monkeypatch.setenv("FACEEDIT_TOKEN", "from-env")
    to = connection(build_parser().parse_args(["attributes", "--server", "edit.example:443"]))
    assert to.tls is not None and not to.tls.mutual and to.token == "from-env" and to.server == "edit.example:443"


def test_explicit_flags_override_parts_of_the_secure_dir(pki) -> None:
    args = build_parser().parse_args(["attributes", "--secure", str(pki.directory), "--token", "mine"])
    assert connection(args).token == "mine"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cert", "c.pem", "--key", "k.pem"], "without a CA"),
        (["--ca", "/no/such/ca.crt"], "/no/such/ca.crt"),
        (["--secure", "/no/such/dir"], "not a directory"),
        (["--token", "two words"], "--token"),
    ],
)
def test_unusable_credentials_are_one_line_usage_errors(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        connection(build_parser().parse_args(["attributes", *flags]))


def test_a_secure_dir_without_a_token_names_the_file(pki, tmp_path: Path) -> None:
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_bytes((pki.directory / name).read_bytes())
    with pytest.raises(UsageError, match="token"):
        connection(build_parser().parse_args(["attributes", "--secure", str(tmp_path)]))

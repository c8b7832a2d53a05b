"""faceedit.devstack.devpki: the throwaway CA, server and client certificates and token of `up --secure DIR`."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from faceedit.devstack.devpki import DevPki, write_dev_pki
from faceedit.rpc.auth import TokenStore
from faceedit.rpc.tls import ChannelTls, ReloadingServerCredentials

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _contents(pki: DevPki) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in pki.files()}


def test_writes_every_file_with_private_ones_readable_by_the_owner_only(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path / "secure")
    names = sorted(p.name for p in pki.directory.iterdir())
    assert names == sorted(
        ["ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key", "token", "tokens.sha256"]
    )
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    for path in (pki.ca_key, pki.server_key, pki.client_key, pki.token):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    for path in (pki.ca_cert, pki.server_cert, pki.client_cert, pki.token_hashes):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_certificates_chain_to_the_ca_with_the_right_names_usages_and_lifetime(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path, extra_hosts=["orchestrator", "10.1.2.3"], now=NOW)
    ca, server, client = _cert(pki.ca_cert), _cert(pki.server_cert), _cert(pki.client_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and not usage.key_cert_sign
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
        assert leaf.public_key().curve.name == "secp256r1"
        assert leaf.not_valid_after_utc == NOW + datetime.timedelta(days=30)
        assert leaf.not_valid_before_utc <= NOW
    eku = lambda c: list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)  # noqa: E731
    assert eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert eku(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "orchestrator"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.1.2.3"),
    ]
    for key_path, cert in ((pki.server_key, server), (pki.client_key, client)):
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert key.public_key() == cert.public_key()


def test_the_token_matches_its_hash_file_and_the_files_load_as_credentials(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path)
    token = pki.read_token()
    assert len(token) >= 40 and TokenStore(pki.token_hashes).verify(token)
    assert ReloadingServerCredentials(pki.server_cert, pki.server_key, pki.ca_cert).mutual
    assert ChannelTls.from_files(pki.ca_cert, pki.client_cert, pki.client_key).mutual


def test_a_valid_set_is_reused_and_regenerate_replaces_it(tmp_path: Path) -> None:
    first = _contents(write_dev_pki(tmp_path, now=NOW))
    assert _contents(write_dev_pki(tmp_path, now=NOW + datetime.timedelta(days=10))) == first
    replaced = _contents(write_dev_pki(tmp_path, now=NOW, regenerate=True))
    assert all(replaced[name] != first[name] for name in first)


@pytest.mark.parametrize(
    "change",
    ["expiring", "new host", "missing file", "corrupt cert", "foreign server cert", "empty token"],
)
def test_an_unusable_set_is_replaced(change: str, tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path / "a", now=NOW)
    first = _contents(pki)
    when, hosts = NOW, ()
    if change == "expiring":
        when = NOW + datetime.timedelta(days=29, hours=12)  # within a day of the end
    elif change == "new host":
        hosts = ("inpainter",)
    elif change == "missing file":
        pki.client_key.unlink()
    elif change == "corrupt cert":
        pki.server_cert.write_text("not a certificate")
    elif change == "foreign server cert":
        other = write_dev_pki(tmp_path / "b", now=NOW)
        pki.server_cert.write_bytes(other.server_cert.read_bytes())
        pki.server_key.write_bytes(other.server_key.read_bytes())
    elif change == "empty token":
        pki.token.write_text("")
    again = write_dev_pki(tmp_path / "a", extra_hosts=hosts, now=when)
    assert _contents(again)["ca.crt"] != first["ca.crt"]
    _cert(again.server_cert).verify_directly_issued_by(_cert(again.ca_cert))

"""A throwaway public-key infrastructure for local and test stacks (`faceedit up --secure DIR`).

write_dev_pki(DIR) leaves in DIR:
  ca.crt, ca.key          a self-signed CA (the only thing clients need to trust)
  server.crt, server.key  serverAuth, SANs DNS:localhost, IP:127.0.0.1, IP:::1 and any extra hosts
  client.crt, client.key  clientAuth, for mTLS to the orchestrator and the inpainter
  token                   a random bearer token (urlsafe)
  tokens.sha256           its SHA-256, the --auth-tokens file format

Keys are EC P-256 and short-lived (30 days by default): nothing here is meant to outlive a development session.
Private keys and the token are 0600, DIR is 0700. Built with the `cryptography` package, no openssl shell-outs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from faceedit.rpc.auth import hash_token

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_VALIDITY_DAYS = 30
# A set that expires within this margin is regenerated rather than reused: a stack started from it must not
# lose its certificates halfway through a session.
RENEW_MARGIN = datetime.timedelta(days=1)
# Clocks of containers and hosts differ by a little; a certificate valid from "now" can look not-yet-valid.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class DevPki:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    token: Path
    token_hashes: Path

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str]) -> DevPki:
        d = Path(directory)
        return cls(
            directory=d,
            ca_cert=d / "ca.crt",
            ca_key=d / "ca.key",
            server_cert=d / "server.crt",
            server_key=d / "server.key",
            client_cert=d / "client.crt",
            client_key=d / "client.key",
            token=d / "token",
            token_hashes=d / "tokens.sha256",
        )

    def files(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.server_cert,
            self.server_key,
            self.client_cert,
            self.client_key,
            self.token,
            self.token_hashes,
        )

    def read_token(self) -> str:
        return self.token.read_text().strip()


def write_dev_pki(
    directory: str | os.PathLike[str],
    *,
    extra_hosts: Iterable[str] = (),
    regenerate: bool = False,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
    now: datetime.datetime | None = None,
) -> DevPki:
    """Write (or reuse) a dev CA, server and client certificates and a token in directory; returns the paths.

    An existing complete set is reused when it is still valid for RENEW_MARGIN, its server certificate names
    every requested host and every certificate chains to its CA; otherwise, or with regenerate=True, every file
    is written anew (the old token stops working). extra_hosts are DNS names or IP addresses added to the
    server certificate's SANs (e.g. a container's service name).
    """
    pki = DevPki.in_directory(directory)
    hosts = _unique((*DEFAULT_HOSTS, *extra_hosts))
    moment = now or datetime.datetime.now(datetime.UTC)
    pki.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.directory, 0o700)
    if not regenerate and reusable(pki, hosts, moment):
        return pki
    not_before = moment - BACKDATE
    not_after = moment + datetime.timedelta(days=validity_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faceedit dev CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _leaf(ca, ca_key, server_key, "faceedit dev server", ExtendedKeyUsageOID.SERVER_AUTH, hosts, not_after)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _leaf(ca, ca_key, client_key, "faceedit dev client", ExtendedKeyUsageOID.CLIENT_AUTH, (), not_after)
    token = secrets.token_urlsafe(32)
    # Keys first, certificates last: a reader that sees the new certificate also finds its key.
    _write(pki.ca_key, _key_pem(ca_key), secret=True)
    _write(pki.server_key, _key_pem(server_key), secret=True)
    _write(pki.client_key, _key_pem(client_key), secret=True)
    _write(pki.token, f"{token}\n".encode(), secret=True)
    _write(pki.token_hashes, f"{hash_token(token)}  faceedit dev token\n".encode(), secret=False)
    _write(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM), secret=False)
    _write(pki.server_cert, server.public_bytes(serialization.Encoding.PEM), secret=False)
    _write(pki.client_cert, client.public_bytes(serialization.Encoding.PEM), secret=False)
    return pki


def reusable(pki: DevPki, hosts: Sequence[str], now: datetime.datetime) -> bool:
    """Whether the set in pki.directory is complete, chains to its CA, names every host and outlives the margin."""
    if not all(path.is_file() for path in pki.files()):
        return False
    try:
        ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        client = x509.load_pem_x509_certificate(pki.client_cert.read_bytes())
        keys = [serialization.load_pem_private_key(p.read_bytes(), None) for p in (pki.server_key, pki.client_key)]
        if not pki.read_token():
            return False
    except (ValueError, TypeError, OSError):
        return False
    for cert, key in ((server, keys[0]), (client, keys[1])):
        if _spki(cert.public_key()) != _spki(key.public_key()):  # type: ignore[union-attr]
            return False
    if any(not _valid_through(cert, now) for cert in (ca, server, client)):
        return False
    if any(not _signed_by(cert, ca) for cert in (server, client)):
        return False
    return set(_sans(server)) >= {_canonical_host(h) for h in hosts}


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    purpose: x509.ObjectIdentifier,
    hosts: Sequence[str],
    not_after: datetime.datetime,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(name, ca.subject, key.public_key(), ca.not_valid_before_utc, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    # ECDHE-ECDSA handshakes only sign: digital_signature is the one usage a TLS leaf with an EC key needs.
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        *(n.lower() for n in names.get_values_for_type(x509.DNSName)),
        *map(str, names.get_values_for_type(x509.IPAddress)),
    ]


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _valid_through(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now and now + RENEW_MARGIN <= cert.not_valid_after_utc


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    """Atomic (write a sibling, rename), so a server reloading on change never reads half a file; a secret is
    0600 from its first byte, never briefly world-readable."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600 if secret else 0o644)  # O_CREAT's mode does not apply to a leftover tmp file
        file.write(data)
    os.replace(tmp, path)


def _unique(hosts: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for host in hosts:
        host = host.strip()
        if host:
            seen.setdefault(_canonical_host(host), host)
    return tuple(seen.values())

"""TLS for faceedit's gRPC hops: server credentials that pick up rotated certificate files without a restart,
optional client-certificate verification (mTLS), and channel credentials for the clients of those servers.

Rotation: servers use grpc.dynamic_ssl_server_credentials. gRPC calls our fetcher at every new TLS handshake;
the fetcher stats the certificate, key and client-CA files (microseconds) and, when any changed, reads and
validates them and hands gRPC the new configuration. Connections already open keep their session; the next
handshake presents the new certificate. A rotation caught half-written (a new certificate whose key has not
arrived yet) or broken is logged and ignored, and the previous certificate keeps serving until the files are
consistent again. cert-manager's Secret volumes swap all files at once (an atomic symlink flip), and
--max-connection-age makes long-lived client connections re-handshake, so no restart is ever needed.

Clients: gRPC Python has no reloading channel credentials, so the CA and client certificate a channel was
built with stay in use until the channel is rebuilt; faceedit's processes pick a rotated client certificate up at
their next restart (cert-manager renews at 2/3 of the lifetime, so the old one stays valid for the remaining third).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from faceedit.rpc.filestate import file_signature

log = logging.getLogger("faceedit.tls")

PathLike = str | os.PathLike[str]


class TlsConfigError(ValueError):
    """A certificate, key or CA file is missing, unreadable, malformed, expired or mismatched (one line naming it)."""


def _read(path: PathLike, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise TlsConfigError(f"{what} {path} is a directory, not a PEM file") from None
    except OSError as exc:
        raise TlsConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise TlsConfigError(f"{what} {path} is empty")
    return data


def _certificates(data: bytes, path: PathLike, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsConfigError(f"{what} {path} is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    return certs


def _check_dates(cert: x509.Certificate, path: PathLike, what: str, now: datetime.datetime) -> None:
    if cert.not_valid_after_utc < now:
        raise TlsConfigError(f"{what} {path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}")


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_key_pair(cert: PathLike, key: PathLike, *, now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM) after checking both parse, the key is the certificate's and the
    certificate has not expired; TlsConfigError naming the file otherwise. The chain file may hold
    intermediates after the leaf (cert-manager's tls.crt does)."""
    cert_pem = _read(cert, "TLS certificate")
    key_pem = _read(key, "TLS key")
    leaf = _certificates(cert_pem, cert, "TLS certificate")[0]
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsConfigError(f"TLS key {key} is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsConfigError(f"TLS key {key} is not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    if _spki(private_key.public_key()) != _spki(leaf.public_key()):
        raise TlsConfigError(f"TLS key {key} does not belong to certificate {cert} (their public keys differ)")
    _check_dates(leaf, cert, "TLS certificate", now or datetime.datetime.now(datetime.UTC))
    return cert_pem, key_pem


def load_ca(path: PathLike, what: str = "CA certificate") -> bytes:
    """PEM bundle of one or more CA certificates; TlsConfigError naming the file."""
    data = _read(path, what)
    now = datetime.datetime.now(datetime.UTC)
    certs = _certificates(data, path, what)
    if all(c.not_valid_after_utc < now for c in certs):
        _check_dates(certs[0], path, what, now)
    return data


def _signature(paths: Sequence[Path]) -> tuple[tuple[int, int, int, int] | None, ...]:
    return tuple(file_signature(path) for path in paths)


@dataclass(frozen=True)
class _Material:
    cert: bytes
    key: bytes
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(self.key, self.cert)], root_certificates=self.client_ca)

    def digest(self) -> str:
        return hashlib.sha256(b"\0".join((self.cert, self.key, self.client_ca or b""))).hexdigest()


class ReloadingServerCredentials:
    """grpc.ServerCredentials (self.credentials, for server.add_secure_port) serving cert/key, reloaded from the
    files at the first handshake after they change. With client_ca, clients must present a certificate signed
    by it (mTLS); the CA file is reloaded like the others.

    Raises TlsConfigError at construction when a file is missing, unreadable, malformed, expired or the key does
    not match the certificate.
    """

    def __init__(self, cert: PathLike, key: PathLike, client_ca: PathLike | None = None) -> None:
        self.cert_path = Path(cert)
        self.key_path = Path(key)
        self.client_ca_path = Path(client_ca) if client_ca is not None else None
        self._paths = [p for p in (self.cert_path, self.key_path, self.client_ca_path) if p is not None]
        self._lock = threading.Lock()
        self._signature = _signature(self._paths)
        self._material = self._load()
        self._failed_signature: tuple[Any, ...] | None = None
        self.reloads = 0
        self.credentials: grpc.ServerCredentials = grpc.dynamic_ssl_server_credentials(
            self._material.configuration(),
            self._fetch,
            require_client_authentication=self.client_ca_path is not None,
        )

    @property
    def mutual(self) -> bool:
        return self.client_ca_path is not None

    def _load(self) -> _Material:
        cert, key = load_key_pair(self.cert_path, self.key_path)
        client_ca = load_ca(self.client_ca_path, "client CA") if self.client_ca_path is not None else None
        return _Material(cert, key, client_ca)

    def reload_if_changed(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed and are valid, else None (keep serving the current one)."""
        with self._lock:
            signature = _signature(self._paths)
            if signature == self._signature:
                return None
            try:
                material = self._load()
            except TlsConfigError as exc:
                if signature != self._failed_signature:  # once per state of the files, not once per handshake
                    log.error("TLS files changed but cannot be used; still serving the previous ones: %s", exc)
                    self._failed_signature = signature
                return None
            self._signature = signature
            if material.digest() == self._material.digest():
                return None  # touched, not changed
            self._material = material
            self.reloads += 1
            log.info("TLS certificate reloaded from %s", self.cert_path)
            return material.configuration()

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC's core on its own thread during a handshake: an exception here would fail the handshake.
        try:
            return self.reload_if_changed()
        except Exception:
            log.exception("TLS reload check failed; still serving the previous certificate")
            return None


def server_credentials(cert: PathLike, key: PathLike, client_ca: PathLike | None = None) -> grpc.ServerCredentials:
    """Shorthand for ReloadingServerCredentials(cert, key, client_ca).credentials."""
    return ReloadingServerCredentials(cert, key, client_ca).credentials


@dataclass(frozen=True)
class ChannelTls:
    """What a client needs to dial a TLS (ca) or mTLS (ca + cert + key) server.

    server_name overrides the name the server certificate must carry (gRPC checks the target's host by default;
    set it when dialling an address list such as `ipv4:10.0.0.1:50052,10.0.0.2:50052`).
    """

    ca_path: Path
    cert_path: Path | None
    key_path: Path | None
    root_certificates: bytes = field(repr=False)
    certificate_chain: bytes | None = field(repr=False)
    private_key: bytes | None = field(repr=False)
    server_name: str | None = None

    @classmethod
    def from_files(
        cls, ca: PathLike, cert: PathLike | None = None, key: PathLike | None = None, *, server_name: str | None = None
    ) -> ChannelTls:
        """TlsConfigError naming the file when one is missing/malformed/expired, the key does not match, or only
        one of cert and key is given."""
        if (cert is None) != (key is None):
            given, missing = ("certificate", "key") if key is None else ("key", "certificate")
            raise TlsConfigError(f"a client {given} ({cert or key}) needs its {missing} too: give both for mTLS")
        root = load_ca(ca)
        chain = private = None
        if cert is not None and key is not None:
            chain, private = load_key_pair(cert, key)
        return cls(
            ca_path=Path(ca),
            cert_path=Path(cert) if cert is not None else None,
            key_path=Path(key) if key is not None else None,
            root_certificates=root,
            certificate_chain=chain,
            private_key=private,
            server_name=server_name,
        )

    @property
    def mutual(self) -> bool:
        return self.certificate_chain is not None

    def credentials(self) -> grpc.ChannelCredentials:
        """For grpc.secure_channel, grpc.aio.secure_channel and tritonclient's InferenceServerClient(creds=...)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> list[tuple[str, Any]]:
        """Channel options to add to the channel's own (the server-name override, when set)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def triton_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for tritonclient.grpc(.aio).InferenceServerClient. Its `creds` path takes our
        credentials as they are; its ssl=True path would re-read the files itself. server_name, if any, must go
        into its channel_args with options()."""
        return {"creds": self.credentials()}


def channel_tls(
    ca: PathLike | None, cert: PathLike | None = None, key: PathLike | None = None, *, server_name: str | None = None
) -> ChannelTls | None:
    """None (plaintext) when no file is given; TlsConfigError when cert/key come without a CA."""
    if ca is None:
        if cert is not None or key is not None:
            raise TlsConfigError("a client certificate or key was given without a CA to verify the server against")
        return None
    return ChannelTls.from_files(ca, cert, key, server_name=server_name)

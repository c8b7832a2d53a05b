"""How the client commands (edit, parse, attributes, bench) reach a server: its address, TLS or mTLS, and the
bearer token, from flags with env-var fallbacks. `--secure DIR` reads what `faceedit up --secure DIR` wrote there
(ca.crt, client.crt, client.key, token); explicit flags override single parts of it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import grpc

from faceedit.cli.argtypes import UsageError
from faceedit.devstack.devpki import DevPki
from faceedit.rpc.auth import check_token, read_token_file
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial_sync
from faceedit.rpc.config import env_flag
from faceedit.rpc.tls import ChannelTls, TlsConfigError, channel_tls


def add_client_flags(p: argparse.ArgumentParser, *, server_help: str = "orchestrator address") -> None:
    env_flag(p, "--server", env="FACEEDIT_SERVER", default="127.0.0.1:50051", help=server_help)
    env_flag(p, "--ca", env="FACEEDIT_CA", type=Path, help="CA certificate to verify the server with (turns on TLS)")
    env_flag(p, "--cert", env="FACEEDIT_CERT", type=Path, help="client certificate, for servers requiring mTLS")
    env_flag(p, "--key", env="FACEEDIT_KEY", type=Path, help="the client certificate's private key")
    env_flag(
        p,
        "--token",
        env="FACEEDIT_TOKEN",
        help="bearer token for a server started with --auth-tokens (prefer the env var or --secure: a flag is "
        "visible to other users in the process list)",
    )
    env_flag(
        p,
        "--secure",
        env="FACEEDIT_SECURE_DIR",
        type=Path,
        metavar="DIR",
        help="directory written by `faceedit up --secure DIR`: its ca.crt, client.crt, client.key and token",
    )


@dataclass(frozen=True)
class Connection:
    """Where a command connects and with what credentials."""

    server: str
    tls: ChannelTls | None
    token: str | None

    def channel(self, max_message_bytes: int = FRONT_DOOR_MAX_MESSAGE_BYTES) -> grpc.Channel:
        return dial_sync(self.server, tls=self.tls, token=self.token, max_message_bytes=max_message_bytes)


# What the gRPC core says when nothing listens at the address, and when the peer hangs up on a plaintext
# HTTP/2 preface (a TLS server does: it waits for a ClientHello) or a TLS handshake fails.
_REFUSED = ("Connection refused", "DNS resolution failed", "Failed to connect")
_HUNG_UP = ("Socket closed", "Connection reset", "handshake", "SSL", "TLS")


def failure_line(exc: grpc.RpcError, server: str | None, tls: bool) -> str:
    """The one line `faceedit` prints for a failed call: its status and details, or, when the connection never
    came up, the cause and what to do about it."""
    code, details = exc.code(), exc.details() or ""
    if code is not grpc.StatusCode.UNAVAILABLE:
        return f"{code.name}: {details}"
    where = server or "the server"
    refused = next((marker for marker in _REFUSED if marker in details), None)
    if refused:
        return (
            f"UNAVAILABLE: nothing answers at {where} ({refused}): start the stack with `faceedit up` first, or give "
            "--server ADDR"
        )
    hung_up = next((marker for marker in _HUNG_UP if marker in details), None)
    if hung_up and not tls:
        return (
            f"UNAVAILABLE: {where} closed a plaintext connection ({hung_up}): it serves TLS, as `faceedit up --secure "
            "DIR` does; connect with --secure DIR (or --ca, --cert, --key)"
        )
    if hung_up:
        return (
            f"UNAVAILABLE: the TLS handshake with {where} failed ({hung_up}): check --secure DIR, or --ca (--cert, "
            "--key for mTLS)"
        )
    return f"{code.name}: {details}"


def connection(args: argparse.Namespace) -> Connection:
    """The Connection add_client_flags' flags describe; UsageError naming the file or flag that is wrong."""
    ca, cert, key, token = args.ca, args.cert, args.key, args.token
    if args.secure is not None:
        if not args.secure.is_dir():
            raise UsageError(f"--secure {args.secure}: not a directory (run `faceedit up --secure {args.secure}`)")
        pki = DevPki.in_directory(args.secure)
        ca, cert, key = ca or pki.ca_cert, cert or pki.client_cert, key or pki.client_key
        if token is None:
            try:
                token = read_token_file(pki.token)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
    try:
        tls = channel_tls(ca, cert, key)
    except TlsConfigError as exc:
        raise UsageError(str(exc)) from None
    if token is not None:
        try:
            token = check_token(token)
        except ValueError as exc:
            raise UsageError(f"--token: {exc}") from None
    return Connection(args.server, tls, token)

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
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, dial, dial_sync
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

    def aio_channel(self, max_message_bytes: int = FRONT_DOOR_MAX_MESSAGE_BYTES) -> grpc.aio.Channel:
        """A grpc.aio channel; create it inside the event loop that uses it."""
        return dial(self.server, tls=self.tls, token=self.token, max_message_bytes=max_message_bytes)


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

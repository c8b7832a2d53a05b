"""Bearer-token authentication at the front door: a reloadable file of token hashes, a constant-time check and a
grpc.aio server interceptor that refuses unauthenticated calls before their handler (or request decoding) runs.

The server stores only SHA-256 hashes of tokens (FACEEDIT_AUTH_TOKENS), so the file can be read by more
people and tools than the tokens themselves. File format, one token per line:

    # comment lines and blank lines are ignored
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  ci-bot (anything after the hash is a label)

`printf %s "$TOKEN" | sha256sum` prints a valid line.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc

from faceedit.rpc.filestate import file_signature

log = logging.getLogger("faceedit.auth")

METADATA_KEY = "authorization"
SCHEME = "bearer"
# Health must answer kubelet and load-balancer probes, which carry no token; reflection only describes the API.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
DEFAULT_CHECK_INTERVAL = 1.0
_HASH = re.compile(r"[0-9a-f]{64}")
# A metadata value is printable ASCII; a token with spaces or controls could not be sent as one.
_TOKEN = re.compile(r"[\x21-\x7e]+")

RejectHook = Callable[[str, str], None]
"""on_reject(method, reason): reason is "missing", "malformed" or "invalid"."""


class TokenFileError(ValueError):
    """The token-hash file is missing, unreadable or has a malformed line (one line naming file and line)."""


def hash_token(token: str) -> str:
    """The line a token-hash file stores for token: its lowercase hex SHA-256 (of the UTF-8 bytes)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token_hashes(text: str, source: str = "token file") -> tuple[bytes, ...]:
    """The distinct 32-byte digests in a token-hash file's text; TokenFileError naming source and line.

    The message never quotes the offending line: a malformed line is often a raw token pasted by mistake.
    """
    digests: dict[bytes, None] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        field = line.split(None, 1)[0]
        if not _HASH.fullmatch(field):
            hint = " (upper-case: write the hash in lower case)" if _HASH.fullmatch(field.lower()) else ""
            raise TokenFileError(
                f"{source} line {number}: expected the lowercase hex SHA-256 of a token (64 characters 0-9a-f), "
                f"found {len(field)} characters{hint}; store `printf %s TOKEN | sha256sum`, never the token"
            )
        digests[bytes.fromhex(field)] = None
    return tuple(digests)


def _read(path: Path) -> tuple[bytes, ...]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise TokenFileError(f"token file {path} does not exist") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"token file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    return parse_token_hashes(text, str(path))


class TokenStore:
    """The accepted token hashes, reloaded from path when the file changes.

    The file is read at construction: TokenFileError if it is missing, malformed or holds no hash (auth was
    asked for, yet nobody could get in). Later the file's stat is checked at most every check_interval
    seconds, on the calls to verify(); a changed file is re-read. A reload that fails (missing, unreadable,
    malformed) keeps the previous hashes and logs why, once per change of the file. A reload that finds no
    hash is accepted (it revokes every token) and logged as a warning.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = file_signature(self.path)
        self._digests = _read(self.path)
        if not self._digests:
            raise TokenFileError(f"token file {self.path} holds no token hash; every call would be refused")
        self._checked = clock()
        self.reloads = 0

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, token: str) -> bool:
        """Whether token is one of the stored ones. Constant time in the token and in which hash matched: the
        presented token is hashed, then compared with every stored digest without stopping at a match."""
        self.refresh()
        presented = hashlib.sha256(token.encode()).digest()
        match = False
        for digest in self._digests:
            match |= hmac.compare_digest(presented, digest)
        return match

    def refresh(self) -> bool:
        """Reload if check_interval has passed and the file changed; True when new hashes were loaded."""
        now = self._clock()
        if now - self._checked < self.check_interval:
            return False
        with self._lock:
            self._checked = now
            signature = file_signature(self.path)
            if signature == self._signature:
                return False
            self._signature = signature  # a broken file is reported once, then retried when it changes again
            try:
                digests = _read(self.path)
            except TokenFileError as exc:
                log.error("keeping the %d previous token hash(es): %s", len(self._digests), exc)
                return False
            if not digests:
                log.warning("token file %s now holds no hash: every token is revoked", self.path)
            self._digests = digests
            self.reloads += 1
            log.info("reloaded %d token hash(es) from %s", len(digests), self.path)
            return True


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> tuple[str | None, str]:
    """(token, "") from `authorization: Bearer <token>` metadata, else (None, reason): "missing" when there is
    no authorization entry, "malformed" when it is not exactly one Bearer credential."""
    values = [value for key, value in metadata or () if key.lower() == METADATA_KEY]
    if not values:
        return None, "missing"
    # Two authorization entries could be read differently by a proxy and by us: refuse rather than pick one.
    if len(values) > 1 or not isinstance(values[0], str):
        return None, "malformed"
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME or not token:
        return None, "malformed"
    return token, ""


_MESSAGES = {
    "missing": "missing credentials: send metadata 'authorization: Bearer <token>'",
    "malformed": "malformed credentials: expected exactly one metadata entry 'authorization: Bearer <token>'",
    "invalid": "invalid token",
}


def _rejecting_handler(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same arity as handler that aborts with UNAUTHENTICATED. It has no request deserializer:
    an unauthenticated caller's bytes are never parsed."""

    async def reject(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(reject)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(reject)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(reject)
    return grpc.unary_unary_rpc_method_handler(reject)


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires a valid bearer token on every method except health and reflection (deny by default: a method
    added later is protected without anyone remembering to list it).

    Put it FIRST in grpc.aio.server(interceptors=[...]): interceptors run in order, and no other one (in-flight
    limits, metrics) should spend anything on a caller who is not authenticated. on_reject(method, reason) is
    called for each refused call (hook a Prometheus counter to it).
    """

    def __init__(
        self,
        store: TokenStore,
        *,
        open_prefixes: Sequence[str] = OPEN_METHOD_PREFIXES,
        on_reject: RejectHook | None = None,
    ) -> None:
        self._store = store
        self._open = tuple(open_prefixes)
        self._on_reject = on_reject

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(self._open):
            return handler
        token, reason = bearer_token(handler_call_details.invocation_metadata)
        if token is not None and self._store.verify(token):
            return handler
        reason = reason or "invalid"
        if self._on_reject is not None:
            self._on_reject(method, reason)
        return _rejecting_handler(handler, _MESSAGES[reason])


# Client side. The token travels as plain call metadata rather than as gRPC call credentials: gRPC refuses to
# send call credentials over an insecure channel, and a local stack may use tokens without TLS. Without TLS the
# token crosses the network in clear text: use both in production.


def check_token(token: str) -> str:
    """token stripped of surrounding whitespace; ValueError (one line, never quoting it) when it cannot be sent."""
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise ValueError("a token must be non-empty printable ASCII without spaces")
    return token


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in a file such as `faceedit up --secure DIR`'s DIR/token; ValueError naming the file."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return check_token(text)
    except ValueError as exc:
        raise ValueError(f"token file {path}: {exc}") from None


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying token, for `stub.Method(request, metadata=...)`."""
    return ((METADATA_KEY, f"Bearer {check_token(token)}"),)


def _with_token(details: Any, metadata: tuple[tuple[str, str], ...], *, aio: bool) -> Any:
    """details (a namedtuple in both APIs) with the token appended to its metadata, in the type each API wants."""
    pairs = (*tuple(details.metadata or ()), *metadata)
    return details._replace(metadata=grpc.aio.Metadata(*pairs) if aio else pairs)


class _AioUnaryUnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[override]
        return await continuation(_with_token(client_call_details, self._metadata, aio=True), request)


class _AioUnaryStreamBearer(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[override]
        return await continuation(_with_token(client_call_details, self._metadata, aio=True), request)


def aio_bearer_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding the token to every unary-request call of a grpc.aio channel:
    `grpc.aio.secure_channel(target, creds, interceptors=aio_bearer_interceptors(token))`. Two objects, because
    grpc.aio files an interceptor under the first call kind it implements only."""
    return [_AioUnaryUnaryBearer(token), _AioUnaryStreamBearer(token)]


class SyncBearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """The same for a synchronous channel: `grpc.intercept_channel(channel, SyncBearerInterceptor(token))`."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[override]
        return continuation(_with_token(client_call_details, self._metadata, aio=False), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[override]
        return continuation(_with_token(client_call_details, self._metadata, aio=False), request)

"""Logging for every faceedit server: one setup (--log-level, --log-format text|json), and one line per request.

JSON lines carry `ts` (UTC, ISO 8601), `level`, `logger`, `msg`, `trace_id` when the record is written inside a
traced request, and a request line's fields (see request_fields).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from opentelemetry import trace

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
REQUEST_LOGGER = "faceedit.requests"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "ts": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """The classic line; a request line's fields follow its message as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        return f"{line} {request_text(fields)}" if fields else line


def configure_logging(
    level: str = "info", fmt: str = "text", stream: TextIO | None = None, libraries: Iterable[str] = ()
) -> None:
    """Replace the root logger's handlers with one writing `fmt` (text or json) at `level` and above to stream
    (default stderr). libraries: Hugging Face packages (transformers, diffusers) whose own stderr handler is
    replaced by this one; call this before importing anything that imports them, as they log at import."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Their own handler would write plain lines into a JSON stream: route them (and Python warnings) through
    # this handler instead.
    for name in libraries:
        library = importlib.import_module(f"{name}.utils.logging")
        library.disable_default_handler()
        library.enable_propagation()
    logging.captureWarnings(True)


def timings_ms(timings: Any) -> dict[str, float]:
    """A StageTimings message's stages that were measured (non-zero), as {"decode_ms": 1.2, ...}, rounded to
    0.1 ms."""
    if timings is None:
        return {}
    return {field.name: round(value, 1) for field, value in timings.ListFields() if field.name.endswith("_ms")}


def request_fields(
    method: str,
    code: str,
    request_id: str,
    seconds: float,
    *,
    attributes: Iterable[str] = (),
    timings: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields of one request's log line: event "request", method, code (a gRPC status name), request_id,
    attributes (the edited regions, in order), duration_ms (the call as the server saw it), the stage timings
    measured (<stage>_ms), and extra."""
    return {
        "event": "request",
        "method": method,
        "code": code,
        "request_id": request_id,
        "attributes": list(attributes),
        "duration_ms": round(seconds * 1000, 1),
        **timings_ms(timings),
        **extra,
    }


def request_text(fields: dict[str, Any]) -> str:
    """A request line's fields after its message in the text format: `request_id=... attributes=hair,lips ...`."""
    return " ".join(
        f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in fields.items()
        if key not in ("event", "method", "code")
    )


class RequestLog:
    """Collects what one call's line says; the service fills attributes and timings as it learns them, and
    observer() writes the line when the call ends, whatever its status."""

    def __init__(self, method: str, request_id: str, attributes: Iterable[str] = (), **extra: Any) -> None:
        self.method = method
        self.request_id = request_id
        self.attributes = list(attributes)
        self.timings: Any = None
        self.extra = extra

    def write(self, code: str, seconds: float) -> None:
        fields = request_fields(
            self.method,
            code,
            self.request_id,
            seconds,
            attributes=self.attributes,
            timings=self.timings,
            **self.extra,
        )
        logging.getLogger(REQUEST_LOGGER).info("%s %s", self.method, code, extra={"fields": fields})

    def observer(self, observe: Callable[[str, str, float], None]) -> Callable[[str, str, float], None]:
        """observe (the metrics), then this call's line."""

        def both(method: str, code: str, seconds: float) -> None:
            observe(method, code, seconds)
            self.write(code, seconds)

        return both

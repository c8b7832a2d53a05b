"""The fuzz harness shared by tests/unit/test_fuzz_*.py: hypothesis strategies for faceedit's protobuf requests
(generated from the message descriptors, so fields added later are fuzzed too) and for encoded images
(structure-aware: valid PNG/JPEG/WebP from random pixels, then damaged), and `fuzz`, which runs a check over a
strategy a bounded, deterministic number of times.

Budget: FACEEDIT_FUZZ_EXAMPLES cases per fuzz test (default 500; five tests: 2,500 cases in `make test`). Longer:
    FACEEDIT_FUZZ_EXAMPLES=200000 .venv/bin/python -m pytest tests/unit/test_fuzz_*.py -q -p no:cacheprovider
By default the cases are derandomized (the same every run, as CI needs); FACEEDIT_FUZZ_SEED=<int> explores a
different sequence. A failure prints the shrunk input and the exception it raised.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from faceedit.core.taxonomy import ATTRIBUTES, CLASS_NAMES
from faceedit.rpc.serving import status_for

EXAMPLES = int(os.environ.get("FACEEDIT_FUZZ_EXAMPLES", "500"))
SEED = os.environ.get("FACEEDIT_FUZZ_SEED")
# Generous for inputs of at most a few kilobytes and 64x64 pixels: a case this slow is a pathology, not noise.
CASE_SECONDS = float(os.environ.get("FACEEDIT_FUZZ_CASE_SECONDS", "5"))
# What a caller may see for a request faceedit refuses (the documented statuses of the request-validation path).
DOCUMENTED = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION})
# gRPC carries the status message in a trailer; clients refuse trailers over 8 KiB by default, which would turn a
# precise refusal into an opaque transport error. Messages stay well below that.
MAX_MESSAGE_CHARS = 2048


def outcome(check: Callable[[], Any]) -> str:
    """ "OK", or the status name of the documented refusal check() raised. Anything else fails the case: an
    exception status_for maps outside DOCUMENTED (INTERNAL: an unexpected exception type), a message that is
    empty, multi-line or too long for a gRPC trailer."""
    try:
        check()
    except Exception as exc:
        code = status_for(exc)
        where = f"{type(exc).__name__}: {str(exc)[:300]!r}"
        if code not in DOCUMENTED:
            raise AssertionError(f"{where} maps to {code.name}") from exc
        message = str(exc)
        if not message or "\n" in message or len(message) > MAX_MESSAGE_CHARS:
            raise AssertionError(f"{where}: {len(message)} characters, not a one-line status message") from exc
        return code.name
    return "OK"


def fuzz(strategy: st.SearchStrategy[Any], case: Callable[[Any], str], examples: int = EXAMPLES) -> Counter:
    """Runs case(value) on `examples` values of strategy; returns a Counter of its results plus "cases" and the
    slowest case's milliseconds under "slowest_ms". A case slower than CASE_SECONDS fails."""
    seen: Counter = Counter()

    @settings(
        max_examples=examples,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(strategy)
    def run(value: Any) -> None:
        start = time.perf_counter()
        result = case(value)
        elapsed = time.perf_counter() - start
        seen[result] += 1
        seen["cases"] += 1
        seen["slowest_ms"] = max(seen["slowest_ms"], round(elapsed * 1000))
        assert elapsed < CASE_SECONDS, f"one case took {elapsed:.1f} s (limit {CASE_SECONDS} s)"

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()
    return seen


# ---- protobuf messages from their descriptors -------------------------------------------------------------

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def long_text(max_chars: int = 20_000) -> st.SearchStrategy[str]:
    """Long strings without paying hypothesis for every character."""
    return st.tuples(st.sampled_from(["a", "é", " ", "\x00", "ab\n"]), st.integers(0, max_chars)).map(
        lambda pair: (pair[0] * pair[1])[:max_chars]
    )


def texts() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=24), st.sampled_from(["", " ", "\t\n", "\x00", "🙂"]), long_text())


def _int_strategy(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, 0, 1, -1, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1) if low <= v <= high]
    return st.one_of(st.integers(max(low, -8), min(high, 300)), st.sampled_from(edges), st.integers(low, high))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INT_RANGES:
        return _int_strategy(*_INT_RANGES[kind])
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.one_of(st.floats(0, 1, width=32), st.floats(width=32))
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(st.floats(0, 1), st.floats())
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return texts()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        # proto3 enums are open: a client built from a newer .proto sends numbers this server does not know.
        return st.one_of(st.sampled_from(known), st.integers(-3, 40))
    raise NotImplementedError(f"no strategy for field {field.full_name} of type {kind}")


Overrides = Mapping[str, st.SearchStrategy[Any]]


def messages(descriptor: Descriptor, overrides: Overrides = {}, depth: int = 0) -> st.SearchStrategy[Message]:  # noqa: B006
    """Messages of descriptor's type with every field fuzzed. overrides maps a field's full name (its whole value:
    a list for repeated fields) or a message type's full name to the strategy to use instead."""
    if descriptor.full_name in overrides:
        return overrides[descriptor.full_name]
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.full_name in overrides:
            fields[field.name] = overrides[field.full_name]
            continue
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry or depth >= 4:
                continue
            value = messages(field.message_type, overrides, depth + 1)
        else:
            value = _scalar(field)
        if field.is_repeated:
            fields[field.name] = st.lists(value, max_size=3)
        elif field.has_presence:
            fields[field.name] = st.none() | value
        else:
            fields[field.name] = value
    cls = _message_class(descriptor)
    return st.fixed_dictionaries(fields).map(lambda values: _build(cls, descriptor, values))


def _message_class(descriptor: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def _build(cls: type[Message], descriptor: Descriptor, values: Mapping[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = descriptor.fields_by_name[name]
        if field.is_repeated:
            getattr(message, name).extend(value)
        elif field.message_type is not None:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def mostly(valid: st.SearchStrategy[Any], anything: st.SearchStrategy[Any], weight: int) -> st.SearchStrategy[Any]:
    """valid about weight times in weight+1 (st.one_of would not do: it picks among distinct branches)."""
    return st.sampled_from([True] * weight + [False]).flatmap(lambda ok: valid if ok else anything)


def attribute_names() -> st.SearchStrategy[str]:
    known = list(ATTRIBUTES)
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known).map(lambda a: f"  {a.upper()} "),
        st.sampled_from(["", "hiar", "lip", "background"]),
        texts(),
    )


def class_name_lists() -> st.SearchStrategy[list[str]]:
    return st.lists(
        st.one_of(st.sampled_from(CLASS_NAMES), st.sampled_from(CLASS_NAMES).map(str.upper), texts()), max_size=4
    )


def prompts() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["curly auburn hair", "red lips", "", "   "]), texts())


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """Serialized bytes, truncated, bit-flipped or spliced: what a broken client or a hostile one sends."""
    n = max(len(data), 1)
    return st.one_of(
        st.just(data),
        st.integers(0, n).map(lambda k: data[:k]),
        st.lists(st.integers(0, n * 8 - 1), min_size=1, max_size=8).map(lambda bits: _flip(data, bits)),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=16)).map(
            lambda p: data[: p[0]] + p[1] + data[p[0] + len(p[1]) :]
        ),
        st.binary(max_size=64).map(lambda junk: data + junk),
    )


def _flip(data: bytes, bits: list[int]) -> bytes:
    out = bytearray(data or b"\0")
    for bit in bits:
        out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# ---- encoded images ----------------------------------------------------------------------------------------

ORIENTATIONS = (1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 255, 65535)
_FORMAT_MODES = {
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "I;16", "1"),
    "JPEG": ("RGB", "L", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
    # Formats faceedit refuses: the decoder must say so, whatever Pillow makes of them.
    "GIF": ("P",),
    "BMP": ("RGB",),
    "TIFF": ("RGB", "I;16"),
}
_HUGE = st.sampled_from([0, 1, 7, 8, 65_535, 65_536, 100_000, 2**24 - 1, 2**31 - 1, 2**32 - 1])


def _pixels(mode: str, size: tuple[int, int], pattern: int, rng_seed: int) -> Image.Image:
    width, height = size
    bands = len(Image.new(mode, (1, 1)).getbands())
    depth = 2 if mode == "I;16" else 1
    if pattern == 0:  # noise: incompressible
        raw = np.random.default_rng(rng_seed).integers(0, 256, width * height * bands * depth, dtype=np.uint8)
    else:  # flat with a stripe: what masks look like
        raw = np.full(width * height * bands * depth, (rng_seed * 37) % 256, np.uint8)
        raw[: width * bands * depth] = 255
    if mode == "1":
        return Image.frombytes("L", size, raw.tobytes()[: width * height]).convert("1")
    img = Image.frombytes(mode, size, raw.tobytes())
    if mode == "P":
        img.info["transparency"] = rng_seed % 256
    return img


@st.composite
def valid_images(
    draw: st.DrawFn, size: tuple[int, int] | None = None, *, formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
) -> tuple[bytes, dict[str, Any]]:
    """(bytes, facts) of a well-formed image: facts has format, size (stored), orientation (EXIF, 1 when none)."""
    fmt = draw(st.sampled_from(formats))
    if size is None:
        side = st.one_of(st.integers(8, 40), st.integers(1, 40))  # mostly decodable, sometimes below MIN_SIDE
        size = (draw(side), draw(side))
    mode = draw(st.sampled_from(_FORMAT_MODES[fmt]))
    img = _pixels(mode, size, draw(st.integers(0, 1)), draw(st.integers(0, 2**16)))
    options: dict[str, Any] = {}
    orientation = 1
    exif_kind = draw(st.sampled_from(["none", "orientation", "garbage"])) if fmt in ("PNG", "JPEG", "WEBP") else "none"
    if exif_kind == "orientation":
        orientation = draw(st.sampled_from(ORIENTATIONS))
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    elif exif_kind == "garbage":
        options["exif"] = b"Exif\x00\x00" + draw(st.binary(max_size=40))
    if fmt == "JPEG":
        options["quality"] = draw(st.integers(1, 100))
        options["progressive"] = draw(st.booleans())
    if fmt == "WEBP":
        options["lossless"] = draw(st.booleans())
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue(), {"format": fmt, "size": size, "orientation": orientation, "exif": exif_kind}


def _png_with_size(data: bytes, width: int, height: int, fix_crc: bool) -> bytes:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33:
        return data
    ihdr = bytearray(data[8:33])  # length(4) type(4) data(13) crc(4)
    ihdr[8:16] = struct.pack(">II", width, height)
    if fix_crc:
        ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return data[:8] + bytes(ihdr) + data[33:]


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0 and at + 9 <= len(data):
            patched = bytearray(data)
            patched[at + 5 : at + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
            return bytes(patched)
    return data


def _webp_with_size(data: bytes, width: int, height: int) -> bytes:
    if data[12:16] != b"VP8X" or len(data) < 30:
        return data
    patched = bytearray(data)
    patched[24:27] = ((max(width, 1) - 1) & 0xFFFFFF).to_bytes(3, "little")
    patched[27:30] = ((max(height, 1) - 1) & 0xFFFFFF).to_bytes(3, "little")
    return bytes(patched)


_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBP", b"GIF89a", b"BM", b"II*\0", b"\0\0\0\0"]


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> tuple[bytes, str]:
    """(bytes, what was done) for one damage applied to an encoded image."""
    kind = draw(st.sampled_from(["truncate", "bitflip", "overwrite", "huge", "magic", "append", "splice"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))], kind
    if kind == "bitflip":
        return _flip(data, draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=6))), kind
    if kind == "overwrite":
        at = draw(st.integers(0, len(data)))
        junk = draw(st.binary(min_size=1, max_size=24))
        return data[:at] + junk + data[at + len(junk) :], kind
    if kind == "huge":
        width, height = draw(_HUGE), draw(_HUGE)
        out = _png_with_size(data, width, height, draw(st.booleans()))
        out = _jpeg_with_size(out, width, height)
        return _webp_with_size(out, width, height), kind
    if kind == "magic":
        magic = draw(st.sampled_from(_MAGICS))
        return magic + data[len(magic) :], kind
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64)), kind
    return data[: len(data) // 2] + data, kind


@st.composite
def image_bytes(
    draw: st.DrawFn, size: tuple[int, int] | None = None, *, damage_rate: int = 3
) -> tuple[bytes, dict[str, Any]]:
    """(bytes, facts): a valid PNG/JPEG/WebP (of size when given), an unsupported format, or one of those
    damaged (about 1 in damage_rate), or random bytes. facts["damage"] is None for intact supported images."""
    source = draw(st.sampled_from(["supported"] * 6 + ["unsupported", "random"]))
    if source == "random":
        return draw(st.binary(max_size=200)), {"format": None, "damage": "random"}
    formats = ("PNG", "JPEG", "WEBP") if source == "supported" else ("GIF", "BMP", "TIFF")
    data, facts = draw(valid_images(size, formats=formats))
    facts["damage"] = None if source == "supported" else "unsupported"
    if draw(st.integers(0, damage_rate - 1)) == 0:
        data, facts["damage"] = draw(damaged(data))
    return data, facts


def displayed_size(facts: Mapping[str, Any]) -> tuple[int, int]:
    width, height = facts["size"]
    return (height, width) if facts["orientation"] in (5, 6, 7, 8) else (width, height)

"""The orchestrator's client for face_parser on Triton (KServe v2 gRPC through tritonclient.grpc.aio)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

from faceedit.channels import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from faceedit.core.geometry import Letterbox, letterbox

RETRYABLE = ("StatusCode.UNAVAILABLE",)


class ParserError(RuntimeError):
    """The parser answered, but not with a usable label map (maps to INTERNAL)."""


class ParserUnavailableError(ParserError):
    """The parser cannot be reached or its model is not ready (maps to UNAVAILABLE)."""


class ParserClient:
    """face_parser on Triton: images letterboxed to the deployment's square input size in, labels out."""

    def __init__(
        self,
        url: str,
        *,
        model_name: str = "face_parser",
        input_size: int = 512,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.url = url
        self.model_name = model_name
        self.input_size = input_size
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = triton.InferenceServerClient(url, channel_args=channel_options(max_message_bytes))

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """RGB (H,W,3) uint8 -> the parser's square input and where the image sits in it (white padding, as the
        thesis). Map labels back with faceedit.core.geometry.unletterbox(labels, box, nearest=True). A camera photo
        is shrunk by a whole factor first: the parser sees 512 pixels either way, 3x sooner."""
        return letterbox(image, self.input_size, coarse=True)

    async def infer_raw(self, batch: np.ndarray, *, timeout_s: float | None = None) -> np.ndarray:
        """[N,H,W,3] uint8 -> [N,H,W] uint8 labels, retrying UNAVAILABLE with backoff inside the deadline."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
            raise ParserError(f"the parser takes uint8 [N,H,W,3] images, got {batch.dtype} {list(batch.shape)}")
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ParserUnavailableError(f"face parser at {self.url} did not answer before the deadline")
            tensor = triton.InferInput("image", list(batch.shape), "UINT8")
            tensor.set_data_from_numpy(batch)
            try:
                result = await self._client.infer(
                    self.model_name,
                    [tensor],
                    outputs=[triton.InferRequestedOutput("labels")],
                    client_timeout=remaining,
                )
                break
            except InferenceServerException as exc:
                if exc.status() not in RETRYABLE and "DEADLINE_EXCEEDED" not in str(exc.status()):
                    raise self._classify(exc) from None
                if "DEADLINE_EXCEEDED" in str(exc.status()) or attempt >= self.retries:
                    raise ParserUnavailableError(f"face parser at {self.url} is unavailable: {exc.message()}") from None
                attempt += 1
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
        expected = batch.shape[:3]
        # Triton 2.51's python backend returns EMPTY tensors without an error when its stub runs with numpy 2;
        # tritonclient then fails to reshape them.
        try:
            labels = result.as_numpy("labels")
        except ValueError as exc:
            labels, got = None, f"an unusable tensor ({exc})"
        else:
            got = "nothing" if labels is None else f"{labels.dtype} {list(labels.shape)}"
        if labels is None or labels.shape != expected or labels.dtype != np.uint8:
            raise ParserError(
                f"face parser returned {got} for a batch of {list(expected)}; expected uint8 labels of that shape "
                "(an empty result usually means the Triton python-backend stub runs with numpy 2)"
            )
        return labels

    def _classify(self, exc: InferenceServerException) -> ParserError:
        message = exc.message() or str(exc)
        if "not ready" in message or "unknown model" in message or exc.status() == "StatusCode.UNAVAILABLE":
            return ParserUnavailableError(f"model {self.model_name} is not ready on {self.url}: {message}")
        return ParserError(f"face parser rejected the request: {message}")

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_model_ready(self.model_name, client_timeout=2.0))
        except InferenceServerException:
            return False

    async def close(self) -> None:
        await self._client.close()

"""The orchestrator's client for face_parser on Triton (KServe v2 gRPC through tritonclient.grpc.aio)."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

from faceedit.core.geometry import Letterbox, letterbox
from faceedit.rpc.channels import triton_client
from faceedit.rpc.tls import ChannelTls


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
        tls: ChannelTls | None = None,
    ) -> None:
        """url: a gRPC target (host:port, dns:///name:port, ipv4:a:p,b:p); calls are balanced over every address
        and UNAVAILABLE is retried `retries` more times by the channel's throttled retry policy."""
        self.url = url
        self.model_name = model_name
        self.input_size = input_size
        self.timeout_s = timeout_s
        self._client = triton_client(url, tls=tls, retries=retries)

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """RGB (H,W,3) uint8 -> the parser's square input and where the image sits in it (white padding, as the
        thesis). Map labels back with faceedit.core.geometry.unletterbox(labels, box, nearest=True). A camera photo
        is shrunk by a whole factor first: the parser sees 512 pixels either way, 3x sooner."""
        return letterbox(image, self.input_size, coarse=True)

    async def infer_raw(
        self, batch: np.ndarray, *, timeout_s: float | None = None, headers: dict[str, str] | None = None
    ) -> np.ndarray:
        """[N,H,W,3] uint8 -> [N,H,W] uint8 labels (UNAVAILABLE is retried by the channel inside the deadline).
        headers go out as the call's gRPC metadata (a W3C traceparent continues the trace in Triton)."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
            raise ParserError(f"the parser takes uint8 [N,H,W,3] images, got {batch.dtype} {list(batch.shape)}")
        tensor = triton.InferInput("image", list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        failure = None
        try:
            result = await self._client.infer(
                self.model_name,
                [tensor],
                outputs=[triton.InferRequestedOutput("labels")],
                client_timeout=self.timeout_s if timeout_s is None else timeout_s,
                headers=headers,
            )
        except InferenceServerException as exc:
            failure = self._classify(exc)
        if failure is not None:  # raised outside the except block: no traceback chained to the caller's status
            raise failure
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
        status = str(exc.status())
        if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status:
            return ParserUnavailableError(f"face parser at {self.url} is unavailable: {message}")
        if "not ready" in message or "unknown model" in message:
            return ParserUnavailableError(f"model {self.model_name} is not ready on {self.url}: {message}")
        return ParserError(f"face parser rejected the request: {message}")

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_model_ready(self.model_name, client_timeout=2.0))
        except InferenceServerException:
            return False

    async def close(self) -> None:
        await self._client.close()

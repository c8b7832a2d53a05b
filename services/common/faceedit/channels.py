"""Every gRPC channel faceedit opens is built here, so both ends of a hop agree on message sizes.

Used by the orchestrator (its hops to Triton and the inpainter), the CLI, the benchmarks and the tests.
"""

from __future__ import annotations

from typing import Any

# gRPC's default is 4 MiB; a 1024x1024 PNG or a raw 1024x1024 RGB frame (3 MiB plus mask) gets close to it.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 2**20
# The front door carries the caller's photo and the edited one, plus masks and parse maps when asked: a 24 MP PNG
# response with return_masks is ~100 MiB. Internal hops stay bounded by the models' canvases.
FRONT_DOOR_MAX_MESSAGE_BYTES = 256 * 2**20


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Options for servers and channels alike, so both ends agree on the size limits."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]

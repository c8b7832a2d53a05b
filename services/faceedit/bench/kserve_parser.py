"""A stand-in for Triton where tritonserver cannot be had (the GPU check machine: no network, 64 MiB to carry):
face_parser's model.onnx in onnxruntime behind the same KServe v2 gRPC calls the orchestrator makes
(ModelInfer, ModelReady, ServerLive, ServerReady), so EditFace runs end to end unchanged. No dynamic batching,
one request at a time: a measuring aid, not a server to deploy.

    python -m faceedit.bench.kserve_parser --onnx parser.onnx --port 8001 --health-port 8011 [--provider cuda]
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import grpc
import numpy as np
import onnxruntime as ort
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

MODEL_NAME = "face_parser"
SERVICE = "inference.GRPCInferenceService"
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
log = logging.getLogger("faceedit.kserve_parser")


def providers_for(requested: str, available: list[str]) -> list[str]:
    """onnxruntime providers for cpu | cuda | auto (cuda when this onnxruntime has it)."""
    if requested == "auto":
        requested = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    return [p for p in PROVIDERS[requested] if p in available] or ["CPUExecutionProvider"]


class Parser(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name == MODEL_NAME)

    async def ModelInfer(self, request, context):
        if request.model_name != MODEL_NAME:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{request.model_name}'")
        if len(request.inputs) != 1 or request.inputs[0].datatype != "UINT8" or len(request.raw_input_contents) != 1:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "face_parser takes one raw UINT8 input, 'image'")
        shape = tuple(request.inputs[0].shape)
        data = request.raw_input_contents[0]
        if len(shape) != 4 or shape[3] != 3 or int(np.prod(shape)) != len(data):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"image must be [N,H,W,3] uint8, got {list(shape)}")
        image = np.frombuffer(data, np.uint8).reshape(shape)
        (labels,) = await asyncio.to_thread(self.session.run, ["labels"], {"image": image})
        output = service_pb2.ModelInferResponse.InferOutputTensor(name="labels", datatype="UINT8", shape=labels.shape)
        return service_pb2.ModelInferResponse(
            model_name=MODEL_NAME, outputs=[output], raw_output_contents=[labels.astype(np.uint8).tobytes()]
        )


async def serve(args: argparse.Namespace) -> None:
    session = ort.InferenceSession(args.onnx, providers=providers_for(args.provider, ort.get_available_providers()))
    log.info("face_parser stand-in execution provider: %s", session.get_providers()[0])
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Parser(session), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.add_insecure_port(f"{args.host}:{args.health_port}")
    await server.start()
    await checks.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="face_parser's ONNX over KServe v2 gRPC, without Triton")
    p.add_argument("--onnx", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--health-port", type=int, required=True)
    p.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto")
    # Unused here; LocalStack passes every service a metrics port.
    p.add_argument("--metrics-port", type=int, default=0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(p.parse_args(argv)))


if __name__ == "__main__":
    main()

"""A checkpoint whose id2label is a permutation of the canonical order (same weights, permuted head) parses, through
Triton and the orchestrator's ParseFace, to exactly the canonical model's class ids."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from faceedit.core.imageio import encode_image
from faceedit.core.taxonomy import CLASS_NAMES
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.triton import TritonServer
from faceedit.export.onnx_export import export_parser
from faceedit.export.segformer import relabel_parser
from faceedit.rpc.channels import FRONT_DOOR_MAX_MESSAGE_BYTES, channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2
from tests.fixtures.stack import start_orchestrator

ORDER = [int(i) for i in np.random.default_rng(11).permutation(len(CLASS_NAMES))]


@pytest.fixture(scope="module")
def relabelled_parser(parser_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    workdir = tmp_path_factory.mktemp("relabelled")
    checkpoint = relabel_parser(parser_checkpoint, workdir / "checkpoint", ORDER)
    export_parser(checkpoint, workdir / "model.onnx", parity_batch=1)
    server = TritonServer(workdir / "model.onnx", workdir=workdir / "triton")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def relabelled_stack(
    relabelled_parser: TritonServer, inpainter_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    process = start_orchestrator(relabelled_parser.grpc_url, inpainter_server.address, tmp_path_factory.mktemp("o"))
    try:
        yield process
    finally:
        process.stop()


def _parse(address: str, data: bytes) -> tuple[np.ndarray, list[tuple[str, int]]]:
    with grpc.insecure_channel(address, options=channel_options(FRONT_DOOR_MAX_MESSAGE_BYTES)) as channel:
        stub = face_editor_pb2_grpc.FaceEditorStub(channel)
        response = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)), timeout=60)
    labels = np.asarray(Image.open(io.BytesIO(response.labels.data)))
    return labels, [(c.name, c.pixels) for c in response.coverage]


def test_parse_face_labels_equal_the_canonical_models_pixel_for_pixel(
    editor_stack: ServiceProcess, relabelled_stack: ServiceProcess
) -> None:
    image = np.random.default_rng(4).integers(0, 256, (150, 110, 3), dtype=np.uint8)
    data = encode_image(image)
    canonical, canonical_coverage = _parse(editor_stack.address, data)
    relabelled, relabelled_coverage = _parse(relabelled_stack.address, data)
    assert canonical.shape == (150, 110) and len(np.unique(canonical)) > 1
    assert np.array_equal(relabelled, canonical)
    assert relabelled_coverage == canonical_coverage

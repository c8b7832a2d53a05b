"""A real Prometheus (Debian's `prometheus` binary) scrapes the real local stack with faceedit's rules loaded: the
services' and Triton's series come back through its query API, the recording rules evaluate on them, and every
dashboard query runs."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest

from faceedit.core.imageio import encode_image
from faceedit.devstack.process import ServiceProcess
from faceedit.devstack.prometheus import LocalPrometheus, PrometheusStartError
from faceedit.devstack.triton import TritonServer
from faceedit.rpc.channels import channel_options
from faceedit.v1 import face_editor_pb2 as fe
from faceedit.v1 import face_editor_pb2_grpc, types_pb2

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "faceedit.json"


def _one_parse_and_one_edit(address: str) -> None:
    stub = face_editor_pb2_grpc.FaceEditorStub(grpc.insecure_channel(address, options=channel_options()))
    data = encode_image(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    parsed = stub.ParseFace(fe.ParseFaceRequest(image=types_pb2.EncodedImage(data=data)))
    target = parsed.coverage[0].name  # the class the random parser finds most of, so the region exists
    stub.EditFace(
        fe.EditFaceRequest(
            image=types_pb2.EncodedImage(data=data),
            edits=[
                fe.Edit(prompt="curly auburn hair", num_inference_steps=2, mask=types_pb2.MaskOptions(classes=[target]))
            ],
        )
    )


def _value(result: list[dict]) -> float:
    return sum(float(item["value"][1]) for item in result)


def test_prometheus_scrapes_the_local_stack_with_the_rules_loaded(
    editor_stack: ServiceProcess, inpainter_server: ServiceProcess, triton_server: TritonServer
) -> None:
    targets = {
        "orchestrator": [editor_stack.metrics_url],
        "inpainter": [inpainter_server.metrics_url],
        "face-parser": [triton_server.metrics_url],
    }
    with LocalPrometheus(targets) as prometheus:
        assert set(prometheus.rule_groups()) == {"faceedit.recording", "faceedit.deprecated-aliases", "faceedit.alerts"}
        _one_parse_and_one_edit(editor_stack.address)
        prometheus.wait_for("up == 1", until=lambda result: {r["metric"]["job"] for r in result} == set(targets))
        edits = prometheus.wait_for(
            'faceedit_orchestrator_requests_total{job="orchestrator", method="EditFace", code="OK"}'
        )
        assert _value(edits) >= 1
        parses = prometheus.wait_for(
            'nv_inference_request_success{job="face-parser", model="face_parser"}',
            until=lambda result: _value(result) >= 2,  # ParseFace's parse and EditFace's
        )
        assert _value(parses) >= 2
        assert _value(prometheus.wait_for('faceedit_inpainter_requests_total{code="OK"}')) >= 1
        # Rules evaluate on the real series (a rate needs two scrapes of the counter).
        recorded = prometheus.wait_for('namespace_method:faceedit_orchestrator_requests:rate5m{method="EditFace"}')
        assert recorded[0]["metric"].get("namespace") is None  # no namespace label locally: one group
        prometheus.wait_for('namespace_model:nv_inference_request_success:rate5m{model="face_parser"}')
        # Dashboards and alerts written against the orchestrator's old names still find its calls.
        old_name = prometheus.wait_for('faceedit_requests_total{job="orchestrator", method="EditFace", code="OK"}')
        assert _value(old_name) == _value(edits)  # one edit, counted once: no other call since
        prometheus.wait_for('namespace_method:faceedit_requests:rate5m{method="EditFace"}')
        dashboard = json.loads(DASHBOARD.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                prometheus.query(target["expr"].replace("$namespace", ".*"))  # a ValueError if Prometheus refuses it
        assert prometheus.query('ALERTS{alertname="FaceeditTargetDown"}') == []


def test_a_broken_rule_file_stops_the_start_with_prometheus_own_words(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    broken.write_text("groups:\n  - name: broken\n    rules:\n      - record: x:y:z\n        expr: sum(\n")
    with pytest.raises(PrometheusStartError, match="parse error"):
        LocalPrometheus({"self": ["http://127.0.0.1:1/metrics"]}, rule_files=[broken], workdir=tmp_path / "p").start()

"""Triton python-backend model: the production face_parser's model.onnx run with onnxruntime on CPU.

Runs inside Triton's python stub (its own venv: numpy<2, onnxruntime), not inside faceedit, so it imports
nothing from faceedit.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        path = os.path.join(
            args["model_repository"], args["model_version"], _parameter(config, "onnx_file", "model.onnx")
        )
        level = _parameter(config, "graph_optimization_level", "all")
        if level not in _OPT_LEVELS:
            raise pb_utils.TritonModelException(f"graph_optimization_level {level!r} is not one of {list(_OPT_LEVELS)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(_parameter(config, "intra_op_threads", "0"))
        options.inter_op_num_threads = 1
        # Idle onnxruntime threads spin by default; with several instances sharing few cores they steal each
        # other's CPU.
        options.add_session_config_entry("session.intra_op.allow_spinning", _parameter(config, "allow_spinning", "1"))
        options.graph_optimization_level = _OPT_LEVELS[level]
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        # On CPU a batch of SegFormer images costs more per image than one image (measured at 512x512: 4 or 8
        # together take ~1.75x longer each), so the batches Triton forms run through onnxruntime in chunks.
        self.chunk = max(1, int(_parameter(config, "max_onnx_batch", "1")))

    def execute(self, requests: list) -> list:
        images = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        labels: list[np.ndarray | None] = [None] * len(images)
        # One onnxruntime run per distinct HxW: the dynamic batcher gathers requests, onnxruntime batches them.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape[1:], []).append(i)
        for indices in by_shape.values():
            batch = np.concatenate([images[i] for i in indices]) if len(indices) > 1 else images[indices[0]]
            chunks = [batch[k : k + self.chunk] for k in range(0, len(batch), self.chunk)]
            out = np.concatenate([self.session.run(["labels"], {"image": chunk})[0] for chunk in chunks])
            start = 0
            for i in indices:
                count = images[i].shape[0]
                labels[i] = out[start : start + count]
                start += count
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("labels", out)]) for out in labels]

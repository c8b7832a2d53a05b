"""Triton python-backend model: the production face_parser's model.onnx run with onnxruntime.

Runs inside Triton's python stub (its own venv: numpy<2, onnxruntime or onnxruntime-gpu), not inside faceedit, so
it imports nothing from faceedit. The `execution_provider` parameter picks the device: cpu, cuda, tensorrt, or
auto (cuda when this onnxruntime can use it, else cpu). The provider onnxruntime actually gave is logged on a line
starting with PROVIDER_LOG_PREFIX (faceedit.devstack.triton reads it back); a provider that was asked for by name
and is not available fails the load with a message saying what to install.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

PROVIDER_LOG_PREFIX = "faceedit face_parser execution provider:"
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_ORT_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_INSTALL_HINT = (
    "install onnxruntime-gpu (and, for tensorrt, TensorRT) into the local Triton's venv: "
    "`make setup-triton-gpu` (pip install -r services/faceedit/devstack/triton-requirements-gpu.txt into .venv-triton)"
)


def _parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def provider_chain(requested: str, available: list[str], options: dict[str, dict]) -> list:
    """onnxruntime's providers list for cpu | cuda | tensorrt | auto; raises ValueError naming what is missing."""
    if requested == "auto":
        requested = "cuda" if _ORT_NAMES["cuda"] in available else "cpu"
    if requested not in _ORT_NAMES:
        raise ValueError(f"execution_provider {requested!r} is not one of auto, {', '.join(_ORT_NAMES)}")
    chain = {"cpu": ["cpu"], "cuda": ["cuda", "cpu"], "tensorrt": ["tensorrt", "cuda", "cpu"]}[requested]
    missing = [_ORT_NAMES[name] for name in chain if _ORT_NAMES[name] not in available]
    if missing:
        raise ValueError(
            f"execution_provider {requested!r} needs {', '.join(missing)}, but this onnxruntime "
            f"({ort.__version__}) offers only {', '.join(available)}: {_INSTALL_HINT}"
        )
    return [(_ORT_NAMES[name], options.get(name, {})) for name in chain]


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
        requested = _parameter(config, "execution_provider", "cpu")
        device = _parameter(config, "device_id", "0")
        size = _parameter(config, "input_size", "512")
        max_batch = max(1, int(config.get("max_batch_size", 1)))
        provider_options = {
            "cuda": {"device_id": device},
            "tensorrt": {
                "device_id": device,
                "trt_fp16_enable": _parameter(config, "trt_fp16", "1"),
                "trt_engine_cache_enable": "1",
                "trt_engine_cache_path": _parameter(config, "trt_cache_dir", os.path.dirname(path)),
                # One profile for every batch the dynamic batcher forms at the serving size.
                "trt_profile_min_shapes": f"image:1x{size}x{size}x3",
                "trt_profile_opt_shapes": f"image:{max_batch}x{size}x{size}x3",
                "trt_profile_max_shapes": f"image:{max_batch}x{size}x{size}x3",
            },
        }
        try:
            chain = provider_chain(requested, ort.get_available_providers(), provider_options)
        except ValueError as exc:
            raise pb_utils.TritonModelException(str(exc)) from None
        if chain[0][0] != _ORT_NAMES["cpu"] and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu[cuda,cudnn] ships CUDA and cuDNN as pip packages; this makes them loadable.
            ort.preload_dlls()
        self.session = ort.InferenceSession(path, options, providers=chain)
        got = self.session.get_providers()
        # onnxruntime falls back to CPU with only a warning when CUDA/TensorRT fail to initialise (no driver, no
        # GPU, missing libraries): asking for a GPU by name and silently parsing on CPU is what this refuses.
        if got[0] != chain[0][0] and requested != "auto":
            raise pb_utils.TritonModelException(
                f"execution_provider {requested!r}: onnxruntime could not start {chain[0][0]} and fell back to "
                f"{got[0]} (no usable GPU or CUDA/cuDNN/TensorRT libraries; see the log above): {_INSTALL_HINT}"
            )
        pb_utils.Logger.log_info(f"{PROVIDER_LOG_PREFIX} {got[0]} (requested {requested}; available {got})")
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

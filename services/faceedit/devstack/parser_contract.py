"""face_parser's I/O, as every parser served in its place must have it: checked before Triton loads a `.onnx`, so a
wrong graph is refused at start with one line naming what differs instead of failing on the first call."""

from __future__ import annotations

from pathlib import Path

CONTRACT = "input 'image' UINT8 [N,H,W,3], output 'labels' UINT8 [N,H,W]"


class ParserContractError(ValueError):
    pass


def _dims(value_info) -> list[int | str]:
    """Shape of an ONNX value: a number per fixed dim, its name (or '?') per dynamic one."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value_info.type.tensor_type.shape.dim
    ]


def _shape(dims: list[int | str]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def contract_difference(path: Path) -> str | None:
    """What in the graph at path differs from face_parser's I/O (see CONTRACT), or None when it matches."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and others: the file is not an ONNX model at all
        return f"it is not a readable ONNX model ({type(exc).__name__}: {exc})"
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    uint8 = onnx.TensorProto.UINT8
    if [i.name for i in inputs] != ["image"]:
        return f"its inputs are {[i.name for i in inputs]}, not ['image']"
    (image,) = inputs
    if image.type.tensor_type.elem_type != uint8:
        return f"input 'image' is {onnx.TensorProto.DataType.Name(image.type.tensor_type.elem_type)}, not UINT8"
    dims = _dims(image)
    if len(dims) != 4 or dims[3] != 3:
        return f"input 'image' has shape {_shape(dims)}, not [N,H,W,3]"
    outputs = {o.name: o for o in graph.output}
    if "labels" not in outputs:
        return f"its outputs are {sorted(outputs)}, with no 'labels'"
    labels = outputs["labels"]
    if labels.type.tensor_type.elem_type != uint8:
        return f"output 'labels' is {onnx.TensorProto.DataType.Name(labels.type.tensor_type.elem_type)}, not UINT8"
    if len(_dims(labels)) != 3:
        return f"output 'labels' has shape {_shape(_dims(labels))}, not [N,H,W]"
    return None


def check_parser_onnx(path: Path) -> None:
    """ParserContractError, one line naming the file and what differs, unless the graph has face_parser's I/O."""
    difference = contract_difference(path)
    if difference is not None:
        raise ParserContractError(f"parser model {path} does not have face_parser's I/O ({CONTRACT}): {difference}")

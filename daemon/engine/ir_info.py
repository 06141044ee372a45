"""What an OpenVINO IR's weights are stored as, read from its XML alone, and whether the NPU takes them.

Why the XML and not `openvino.Core.read_model`: `model list` runs often and must stay cheap
(no OpenVINO import, no multi-GB .bin touched), and `model pull` decides what to do with a
published IR after downloading only its small files. The XML names every constant's element
type and shape, its edges show which constants are the weights of a MatMul (the layers the NPU
runs), a Gather (an embedding table) or a Convolution, and NNCF leaves its settings in `<rt_info>`.

How NNCF stores weights (3.x): int4 symmetric as `i4` (no zero point), int4 asymmetric as `u4`
plus a `u4` zero point, int8 symmetric as `i8`, int8 asymmetric as `u8` plus a zero point, NF4 as
`nf4`; grouped 4-bit weights are 3-D constants `[rows, groups, group_size]`, channel-wise ones 2-D.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGE_MODEL_XML = "openvino_language_model.xml"

# Ops a weight passes through between its constant and the layer that uses it (decompression, layout).
_PASS_THROUGH = {"Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}
_STORAGE = {
    "i4": "int4_sym",
    "u4": "int4_asym",
    "nf4": "nf4",
    "i8": "int8_sym",
    "u8": "int8_asym",
    "f16": "fp16",
    "bf16": "bf16",
    "f32": "fp32",
}
_FLOAT = {"fp16", "bf16", "fp32"}


@dataclass(frozen=True)
class Weight:
    """One weight matrix: the layer that uses it, how it is stored, its group size (0 = not grouped)."""

    layer: str  # MatMul | Gather | Convolution
    storage: str  # int4_sym, int8_asym, fp16, ...
    shape: tuple[int, ...]
    nbytes: int
    group_size: int


@dataclass
class IRWeights:
    """The weights of one IR file and the compression settings NNCF recorded (if any)."""

    weights: list[Weight] = field(default_factory=list)
    nncf: dict[str, str] = field(default_factory=dict)  # rt_info nncf/weight_compression: mode, ratio, group_size

    def bytes_by_storage(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for w in self.weights:
            out[w.storage] += w.nbytes
        return dict(out)

    def matmuls(self) -> list[Weight]:
        return [w for w in self.weights if w.layer == "MatMul"]

    def label(self) -> str:
        """A short description, e.g. 'int4_sym g128 + int8_asym (1 layer)' or 'fp16'."""
        mm = self.matmuls() or self.weights
        if not mm:
            return "no weights"
        kinds = Counter(w.storage for w in mm)
        main, _ = kinds.most_common(1)[0]
        text = main
        if main.startswith(("int4", "nf4")):
            groups = sorted({w.group_size for w in mm if w.storage == main})
            text += " " + "/".join("channel-wise" if g == 0 else f"g{g}" for g in groups)
        others = [f"{k} ({n} layer{'s' if n > 1 else ''})" for k, n in kinds.items() if k != main]
        return " + ".join([text, *others])

    def npu_ready(self) -> tuple[bool, str]:
        """Whether the NPU takes these weights, and why not.

        The NPU needs every MatMul weight in symmetric int4, grouped by 128 or channel-wise (NNCF's
        ratio 1.0). One exception is what NNCF itself keeps in 8 bit by default: the last MatMul
        (the LM head, most sensitive to rounding), as in OpenVINO's published NPU-ready models.
        """
        mm = self.matmuls()
        if not mm:
            return False, "no MatMul weights found in the IR"
        body, head = mm[:-1], mm[-1]
        bad = [w for w in body if w.storage != "int4_sym"]
        if bad:
            kinds = Counter(w.storage for w in bad)
            what = ", ".join(f"{n} in {k}" for k, n in kinds.most_common())
            return False, f"{len(bad)} of {len(mm)} weight matrices are not symmetric int4 ({what})"
        groups = {w.group_size for w in body}
        if not groups <= {0, 128}:
            return False, f"int4 group size {sorted(groups)}: the NPU needs 128 or channel-wise"
        if head.storage not in ("int4_sym", "int8_sym", "int8_asym"):
            return False, f"the LM head is {head.storage}: the NPU needs int4 symmetric or int8"
        if head.storage == "int4_sym" and head.group_size not in (0, 128):
            return False, f"the LM head's int4 group size is {head.group_size}"
        return True, "symmetric int4, " + ("channel-wise" if groups == {0} else "group 128")


def _const_weight(
    layers: dict[str, ET.Element], inputs: dict[str, list[str]], lid: str, depth: int = 0
) -> ET.Element | None:
    """The largest constant reached from layer `lid` through decompression ops (None: an activation)."""
    layer = layers.get(lid)
    if layer is None or depth > 8:
        return None
    kind = layer.get("type")
    if kind == "Const":
        return layer
    if kind not in _PASS_THROUGH:
        return None
    best = None
    for src in inputs.get(lid, []):
        found = _const_weight(layers, inputs, src, depth + 1)
        if found is not None and (best is None or _nbytes(found) > _nbytes(best)):
            best = found
    return best


def _nbytes(const: ET.Element) -> int:
    data = const.find("data")
    return int(data.get("size", "0")) if data is not None else 0


def _shape(const: ET.Element) -> tuple[int, ...]:
    data = const.find("data")
    text = (data.get("shape", "") if data is not None else "").strip()
    return tuple(int(x) for x in text.split(",") if x.strip()) if text else ()


def read_ir_weights(xml_path: Path) -> IRWeights:
    """Parse an IR's XML: the weights of its MatMul, Gather and Convolution layers in graph order, NNCF's rt_info."""
    root = ET.parse(xml_path).getroot()
    layers = {el.get("id", ""): el for el in root.iterfind("./layers/layer")}
    inputs: dict[str, list[str]] = {}
    port_of: dict[tuple[str, str], str] = {}
    for edge in root.iterfind("./edges/edge"):
        to, frm = edge.get("to-layer", ""), edge.get("from-layer", "")
        inputs.setdefault(to, []).append(frm)
        port_of[(to, frm)] = edge.get("to-port", "")
    info = IRWeights()
    for lid, layer in layers.items():
        kind = layer.get("type")
        if kind not in ("MatMul", "Gather", "Convolution"):
            continue
        for src in inputs.get(lid, []):
            const = _const_weight(layers, inputs, src)
            # A weight matrix has two or more real dimensions; (1, 1, 128) is a rotary-embedding table.
            if const is None or sum(d > 1 for d in _shape(const)) < 2:
                continue
            data = const.find("data")
            etype = data.get("element_type", "") if data is not None else ""
            storage = _STORAGE.get(etype, etype)
            shape = _shape(const)
            group = shape[-1] if len(shape) == 3 and storage in ("int4_sym", "int4_asym", "nf4") else 0
            info.weights.append(Weight(kind, storage, shape, _nbytes(const), group))
            break
    wc = root.find("./rt_info/nncf/weight_compression")
    if wc is not None:
        info.nncf = {child.tag: child.get("value", "") for child in wc if child.tag != "advanced_parameters"}
    return info


@dataclass(frozen=True)
class ModelFormat:
    """A model folder's weight format as `model list` shows it."""

    label: str
    npu_ready: bool
    why: str


def model_format(model_dir: Path) -> ModelFormat:
    """The language model's weight format and NPU readiness (the part that runs on the NPU)."""
    xml = Path(model_dir) / LANGUAGE_MODEL_XML
    if not xml.is_file():
        return ModelFormat("-", False, f"no {LANGUAGE_MODEL_XML}")
    try:
        info = read_ir_weights(xml)
    except (ET.ParseError, OSError, ValueError) as exc:
        return ModelFormat("unreadable", False, f"{LANGUAGE_MODEL_XML}: {exc}")
    ready, why = info.npu_ready()
    return ModelFormat(info.label(), ready, why)


def is_float(storage: str) -> bool:
    return storage in _FLOAT

"""The vocabulary of INT8 calibration: the layer groups of the network (what
``--exclude`` names), targets, calibration methods and their defaults.

Light on purpose (no ONNX, no ONNX Runtime, no torch): ``mrcnn-calibrate --help``
reads its choices and defaults from here. :mod:`.qdq` does the work.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

from mrcnn_trt.errors import UserError

#: Operator types whose weights and activations are quantized.
QUANT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm")

#: Layer groups, by the name of the node's weight initializer (``model.`` prefix
#: removed). Order matters: the first match wins.
GROUPS: Tuple[Tuple[str, str, str], ...] = (
    ("backbone", r"^fpn\.C\d", "ResNet stages C1..C5"),
    ("fpn", r"^fpn\.P\d", "FPN lateral (1x1) and output (3x3) convolutions P2..P6"),
    ("rpn", r"^rpn\.conv_shared", "RPN shared 3x3 convolution"),
    ("rpn_out", r"^rpn\.conv_(class|bbox)", "RPN class logits and box deltas (1x1)"),
    ("classifier", r"^classifier\.conv\d", "box head 7x7 + 1x1 'fc' convolutions"),
    ("classifier_out", r"^classifier\.linear_", "box head class logits and class box deltas (Gemm)"),
    ("mask", r"^mask\.(conv[1-4]|deconv)", "mask head 3x3 convolutions and 2x2 deconvolution"),
    ("mask_out", r"^mask\.conv5", "mask logits (1x1)"),
)
GROUP_NAMES = tuple(g[0] for g in GROUPS) + ("other",)

#: Groups left in float by default (see the module docstring and calib/README.md).
DEFAULT_EXCLUDE: Tuple[str, ...] = ("rpn_out", "classifier_out", "mask_out")

TARGETS = ("tensorrt", "cpu")
METHODS = ("minmax", "entropy", "percentile")
#: Percentile (99.999 %, symmetric) lost the least mask AP on the shipped model
#: (calib/README.md); it calibrates as fast as minmax (one pass over the tail).
DEFAULT_METHOD = "percentile"
#: Calibration images by default: from 32-64 images on the shipped model's INT8 mask
#: AP stays within the noise of the 500-image result (calib/README.md); 128 keeps a margin.
DEFAULT_CALIB_COUNT = 128
ACTIVATIONS = ("int8", "uint8")
#: int8 symmetric for TensorRT (zero points must be 0); uint8 asymmetric for
#: ONNX Runtime on x86, whose QDQ fusion needs uint8 activations there (int8
#: ones are converted to uint8 only for simple Q->DQ chains, so convolutions
#: whose tensors have several consumers would stay float).
DEFAULT_ACTIVATIONS = {"tensorrt": "int8", "cpu": "uint8"}


# --------------------------------------------------------------------------- graph helpers
def _weight_name(node, initializers) -> Optional[str]:
    if len(node.input) > 1 and node.input[1] in initializers:
        return node.input[1]
    return None


def layer_group(weight_name: Optional[str]) -> str:
    """Group of a quantizable node from its weight initializer name ("other" if unknown)."""
    if not weight_name:
        return "other"
    name = weight_name[len("model."):] if weight_name.startswith("model.") else weight_name
    for group, pattern, _ in GROUPS:
        if re.match(pattern, name):
            return group
    return "other"


def ensure_node_names(model) -> None:
    """Give every node a unique name (the quantizer selects nodes by name)."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)


def node_groups(model) -> Dict[str, str]:
    """{node name: group} for every Conv/ConvTranspose/Gemm of ``model`` (names must be set)."""
    inits = {t.name for t in model.graph.initializer}
    return {n.name: layer_group(_weight_name(n, inits)) for n in model.graph.node
            if n.op_type in QUANT_OP_TYPES and n.domain in ("", "ai.onnx")}


def parse_groups(text: Optional[str]) -> Tuple[str, ...]:
    """``"rpn_out,mask_out"`` -> tuple; ``"none"``/``""`` -> (); None -> the default."""
    if text is None:
        return DEFAULT_EXCLUDE
    text = text.strip()
    if text in ("", "none"):
        return ()
    out = []
    for g in text.split(","):
        g = g.strip()
        if g not in GROUP_NAMES:
            raise UserError(f"unknown layer group {g!r}; choose from {', '.join(GROUP_NAMES)} (or 'none')")
        if g not in out:
            out.append(g)
    return tuple(out)

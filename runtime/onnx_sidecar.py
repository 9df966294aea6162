"""The sidecar of an exported ONNX model (``model.onnx.json``, written by mrcnn-export):
reading it, and where it disagrees with itself or with the graph.

    side = read_sidecar("model.onnx")             # UserError: missing or unreadable
    sidecar_problems(side, inputs, outputs)       # [] when the graph fits

Used by the ONNX Runtime runner (:mod:`.runners`) and the one model loader
(:mod:`.modelfile`).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import read_json_object, read_sidecar_of


def read_sidecar(path: str) -> dict:
    return read_sidecar_of(path, missing="{path} has no sidecar {sidecar}; export it with mrcnn-export",
                           unusable="re-export the model", reader=lambda sp: read_json_object(sp, "sidecar"))


def sidecar_problems(side: dict, inputs: Dict[str, Sequence], outputs: Dict[str, Sequence]) -> List[str]:
    """Where an ONNX sidecar disagrees with itself or with the graph's input/output
    shapes (``{name: [dims]}``, symbolic dims as strings or None). Empty when it fits."""
    problems = []
    try:
        cfg = Config.from_dict(side["config"])
        size, batch = int(side["image_size"]), int(side["batch"])
        num_classes = int(side["num_classes"])
    except (KeyError, TypeError, ValueError, UserError) as e:
        return [f"unreadable field {e}"]
    if size != cfg.IMAGE_MAX_DIM:
        problems.append(f"image_size {size} but config IMAGE_MAX_DIM {cfg.IMAGE_MAX_DIM}")
    if num_classes != cfg.NUM_CLASSES or len(side.get("class_names", cfg.CLASS_NAMES)) != num_classes:
        problems.append(f"num_classes {num_classes} but config NUM_CLASSES {cfg.NUM_CLASSES} and "
                        f"{len(side.get('class_names', []))} class_names")
    missing = sorted({"images", "windows"} - set(inputs)) + sorted({"detections", "count", "masks"} - set(outputs))
    if missing:
        problems.append(f"the graph lacks {', '.join(missing)} (inputs {sorted(inputs)}, outputs {sorted(outputs)}): "
                        f"not an mrcnn-export model")
    img = list(inputs.get("images") or [])
    if len(img) != 4 or img[1] != 3:
        problems.append(f"graph input 'images' has shape {img}, expected [N, 3, S, S]")
    else:
        if img[2] != size or img[3] != size:
            problems.append(f"image_size {size} but the graph takes {img[2]}x{img[3]} images")
        dynamic = bool(side.get("dynamic_batch"))
        if isinstance(img[0], int) and not dynamic and img[0] != batch:
            problems.append(f"batch {batch} but the graph's batch is {img[0]}")
        if not isinstance(img[0], int) and not dynamic:
            problems.append("the graph has a dynamic batch but the sidecar says a fixed one")
    det = list(outputs.get("detections") or [])
    if det and (len(det) != 3 or det[2] not in (6, None) and not isinstance(det[2], str)):
        problems.append(f"graph output 'detections' has shape {det}, expected [N, D, 6]")
    if len(det) == 3 and isinstance(det[1], int) and det[1] != cfg.DETECTION_MAX_INSTANCES:
        problems.append(f"config DETECTION_MAX_INSTANCES {cfg.DETECTION_MAX_INSTANCES} but the graph gives "
                        f"{det[1]} detections")
    return problems

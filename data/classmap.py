"""Class mappings between the model class sets (COCO, Cityscapes, shapes) and
Cityscapes label ids.

Cityscapes instance classes (``cityscapesscripts.helpers.labels``: ``hasInstances``
and not ``ignoreInEval``) and their label ids; the internal ids 1..8 of the
``cityscapes`` preset follow :data:`mrcnn_trt.config.CITYSCAPES_CLASS_NAMES`::

    internal  name        labelId
    1         person      24
    2         rider       25
    3         car         26
    4         truck       27
    5         bus         28
    6         train       31
    7         motorcycle  32
    8         bicycle     33

**A COCO model on Cityscapes** (:func:`coco_to_cityscapes`): COCO person, bicycle,
car, motorcycle, bus, train and truck map to the Cityscapes class of the same name;
every other COCO class is dropped (its detections are not written). *rider* has no
COCO class, so a COCO model never predicts it: the official evaluator scores rider
AP = 0 (ground truth present, no predictions), and it counts in the official mean
over the 8 classes. The evaluator therefore also reports ``AP_mappable``: the mean
over the 7 classes the model can predict.

**Synthetic shapes in Cityscapes format** (:data:`SHAPES_TO_CITYSCAPES`): the
generator writes circle as *person* (24), square as *car* (26) and triangle as
*bicycle* (33), so the official Cityscapes evaluator reads the files unchanged; a
shapes model is evaluated with the same mapping (:func:`shapes_to_cityscapes`).
"""
from __future__ import annotations

from typing import Dict, Sequence

from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES, COCO_CLASS_NAMES, SHAPES_CLASS_NAMES

#: Cityscapes instance classes -> label id (``labels.py`` ids, not train ids)
CITYSCAPES_LABEL_IDS: Dict[str, int] = {
    "person": 24, "rider": 25, "car": 26, "truck": 27, "bus": 28,
    "train": 31, "motorcycle": 32, "bicycle": 33,
}
#: label id -> Cityscapes class name
CITYSCAPES_LABEL_NAMES: Dict[int, str] = {v: k for k, v in CITYSCAPES_LABEL_IDS.items()}

#: internal id (1..8, CITYSCAPES_CLASS_NAMES order) -> label id
CITYSCAPES_INTERNAL_TO_LABEL: Dict[int, int] = {
    i: CITYSCAPES_LABEL_IDS[n] for i, n in enumerate(CITYSCAPES_CLASS_NAMES) if i > 0
}
#: label id -> internal id
CITYSCAPES_LABEL_TO_INTERNAL: Dict[int, int] = {v: k for k, v in CITYSCAPES_INTERNAL_TO_LABEL.items()}

#: COCO class names that have a Cityscapes counterpart (same name)
COCO_CITYSCAPES_NAMES = ("person", "bicycle", "car", "motorcycle", "bus", "train", "truck")

#: shapes class -> Cityscapes class used for the synthetic Cityscapes-format data
SHAPES_TO_CITYSCAPES_NAMES: Dict[str, str] = {"circle": "person", "square": "car", "triangle": "bicycle"}
#: shapes internal id (1..3) -> Cityscapes label id
SHAPES_TO_CITYSCAPES: Dict[int, int] = {
    i: CITYSCAPES_LABEL_IDS[SHAPES_TO_CITYSCAPES_NAMES[n]] for i, n in enumerate(SHAPES_CLASS_NAMES) if i > 0
}


def label_map_by_name(class_names: Sequence[str], name_map: Dict[str, str] | None = None) -> Dict[int, int]:
    """Model internal id -> Cityscapes label id, for every class whose (mapped) name
    is a Cityscapes instance class. ``name_map`` renames model classes first."""
    out = {}
    for i, n in enumerate(class_names):
        if i == 0:
            continue
        target = (name_map or {}).get(n, n)
        if target in CITYSCAPES_LABEL_IDS:
            out[i] = CITYSCAPES_LABEL_IDS[target]
    return out


def coco_to_cityscapes(class_names: Sequence[str] = COCO_CLASS_NAMES) -> Dict[int, int]:
    """COCO model internal id -> Cityscapes label id for the 7 shared classes."""
    m = {i: CITYSCAPES_LABEL_IDS[n] for i, n in enumerate(class_names) if n in COCO_CITYSCAPES_NAMES}
    assert len(m) == 7, m
    return m


def shapes_to_cityscapes() -> Dict[int, int]:
    """Shapes model internal id -> the Cityscapes label id the generator writes."""
    return dict(SHAPES_TO_CITYSCAPES)


def cityscapes_label_map(class_names: Sequence[str]) -> Dict[int, int]:
    """The mapping to use for a model with these class names: the identity for a
    Cityscapes model, :func:`coco_to_cityscapes` for a COCO model,
    :func:`shapes_to_cityscapes` for a shapes model, else by name."""
    names = tuple(class_names)
    if names == tuple(CITYSCAPES_CLASS_NAMES):
        return dict(CITYSCAPES_INTERNAL_TO_LABEL)
    if names == tuple(COCO_CLASS_NAMES):
        return coco_to_cityscapes(names)
    if names == tuple(SHAPES_CLASS_NAMES):
        return shapes_to_cityscapes()
    return label_map_by_name(names, SHAPES_TO_CITYSCAPES_NAMES)

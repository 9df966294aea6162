"""Model configuration: a frozen dataclass with the original lab's field names
and defaults (``docs/model.md`` §1.2), plus presets.

Use :func:`preset` to get a named configuration and ``dataclasses.replace``
(or :meth:`Config.replace`) to change fields; every new instance is validated
and a bad value raises :class:`~mrcnn_trt.errors.UserError` with a clear
message.

Fields that the original hard-codes (backbone, channel widths, the FPN level
constants) are fields here so that small test models can be built; their
defaults are the original values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Tuple

from .errors import UserError
from .fileio import check_regular_file, read_json_object

#: Largest IMAGE_MAX_DIM (the network input square): Cityscapes' full width. Larger inputs
#: only exhaust memory in the anchors and feature maps after a long export or start-up.
MAX_IMAGE_DIM = 2048

#: Upper bounds of the fields that size tensors (generous: 10x and more the presets' values).
LIMITS = {
    "NUM_CLASSES": 10000, "PRE_NMS_LIMIT": 100000, "POST_NMS_ROIS_INFERENCE": 20000,
    "POST_NMS_ROIS_TRAINING": 20000, "DETECTION_MAX_INSTANCES": 1000, "MAX_GT_INSTANCES": 1000,
    "TRAIN_ROIS_PER_IMAGE": 5000, "RPN_TRAIN_ANCHORS_PER_IMAGE": 5000, "POOL_SIZE": 64, "MASK_POOL_SIZE": 64,
    "IMAGES_PER_GPU": 256, "BACKBONE_BASE_WIDTH": 512, "TOP_DOWN_PYRAMID_SIZE": 2048, "RPN_HIDDEN": 4096,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 8192, "MASK_HEAD_CHANNELS": 2048,
}

BACKBONE_BLOCKS = {
    # name: blocks per stage C2..C5 (Bottleneck, expansion 4)
    "resnet101": (3, 4, 23, 3),
    "resnet50": (3, 4, 6, 3),
    "resnet14": (1, 1, 1, 1),  # compact backbone of the shipped "shapes" model
}

COCO_CLASS_NAMES = (
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

CITYSCAPES_CLASS_NAMES = (
    "BG", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

SHAPES_CLASS_NAMES = ("BG", "circle", "square", "triangle")


@dataclass(frozen=True)
class Config:
    """Mask R-CNN configuration (names and defaults of the original ``config.py``).

    Image geometry: images are resized so that the short side is at least
    IMAGE_MIN_DIM and the long side at most IMAGE_MAX_DIM, then zero-padded to
    an IMAGE_MAX_DIM square (IMAGE_PADDING is always on).
    """

    NAME: str = "mrcnn"
    NUM_CLASSES: int = 81
    CLASS_NAMES: Tuple[str, ...] = COCO_CLASS_NAMES

    # backbone / widths (hard-coded in the original; defaults are its values)
    BACKBONE: str = "resnet101"
    BACKBONE_BASE_WIDTH: int = 64          # planes of C2; C1 has this many channels
    TOP_DOWN_PYRAMID_SIZE: int = 256       # FPN channels
    RPN_HIDDEN: int = 512                  # RPN shared conv width
    FPN_CLASSIF_FC_LAYERS_SIZE: int = 1024  # classifier "FC" width
    MASK_HEAD_CHANNELS: int = 256
    BACKBONE_STRIDES: Tuple[int, ...] = (4, 8, 16, 32, 64)

    # RPN
    RPN_ANCHOR_SCALES: Tuple[int, ...] = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS: Tuple[float, ...] = (0.5, 1.0, 2.0)
    RPN_ANCHOR_STRIDE: int = 1
    RPN_NMS_THRESHOLD: float = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE: int = 256
    PRE_NMS_LIMIT: int = 6000
    POST_NMS_ROIS_TRAINING: int = 2000
    POST_NMS_ROIS_INFERENCE: int = 1000
    RPN_BBOX_STD_DEV: Tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)

    # images
    IMAGE_MIN_DIM: int = 800
    IMAGE_MAX_DIM: int = 1024
    MEAN_PIXEL: Tuple[float, ...] = (123.7, 116.8, 103.9)

    # heads
    POOL_SIZE: int = 7
    MASK_POOL_SIZE: int = 14
    MASK_SHAPE: Tuple[int, int] = (28, 28)
    ROI_CANONICAL_SIZE: float = 224.0
    ROI_CANONICAL_LEVEL: int = 4
    BBOX_STD_DEV: Tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)

    # detection
    DETECTION_MAX_INSTANCES: int = 100
    DETECTION_MIN_CONFIDENCE: float = 0.7
    DETECTION_NMS_THRESHOLD: float = 0.3

    # training
    USE_MINI_MASK: bool = True
    MINI_MASK_SHAPE: Tuple[int, int] = (56, 56)
    TRAIN_ROIS_PER_IMAGE: int = 200
    ROI_POSITIVE_RATIO: float = 0.33
    MAX_GT_INSTANCES: int = 100
    LEARNING_RATE: float = 0.001
    LEARNING_MOMENTUM: float = 0.9
    WEIGHT_DECAY: float = 0.0001
    GRADIENT_CLIP_NORM: float = 5.0
    IMAGES_PER_GPU: int = 1

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def IMAGE_SHAPE(self) -> Tuple[int, int, int]:
        return (self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, 3)

    @property
    def BACKBONE_SHAPES(self) -> Tuple[Tuple[int, int], ...]:
        s = self.IMAGE_MAX_DIM
        return tuple((int(math.ceil(s / st)), int(math.ceil(s / st))) for st in self.BACKBONE_STRIDES)

    @property
    def NUM_ANCHORS(self) -> int:
        per_loc = len(self.RPN_ANCHOR_RATIOS)
        return sum(
            math.ceil(h / self.RPN_ANCHOR_STRIDE) * math.ceil(w / self.RPN_ANCHOR_STRIDE) * per_loc
            for h, w in self.BACKBONE_SHAPES
        )

    @property
    def BACKBONE_STAGE_BLOCKS(self) -> Tuple[int, int, int, int]:
        return BACKBONE_BLOCKS[self.BACKBONE]

    # ------------------------------------------------------------------ helpers
    def validate(self) -> None:
        def bad(msg: str):
            raise UserError(f"invalid config {self.NAME!r}: {msg}")

        if self.BACKBONE not in BACKBONE_BLOCKS:
            bad(f"BACKBONE must be one of {sorted(BACKBONE_BLOCKS)}, got {self.BACKBONE!r}")
        self._check_types(bad)
        if self.IMAGE_MAX_DIM % 64 != 0 or self.IMAGE_MAX_DIM <= 0:
            bad(f"IMAGE_MAX_DIM must be a positive multiple of 64 (the image is downsampled 6 times), "
                f"got {self.IMAGE_MAX_DIM}; use e.g. 256, 512, 768 or 1024")
        if self.IMAGE_MAX_DIM > MAX_IMAGE_DIM:
            bad(f"IMAGE_MAX_DIM must be <= {MAX_IMAGE_DIM}, got {self.IMAGE_MAX_DIM}")
        for name, top in LIMITS.items():
            if getattr(self, name) > top:
                bad(f"{name} must be <= {top}, got {getattr(self, name)}")
        if not 0 < self.IMAGE_MIN_DIM <= self.IMAGE_MAX_DIM:
            bad(f"IMAGE_MIN_DIM must be in 1..IMAGE_MAX_DIM ({self.IMAGE_MAX_DIM}), got {self.IMAGE_MIN_DIM}")
        if self.NUM_CLASSES < 2:
            bad(f"NUM_CLASSES must be >= 2 (background + at least one class), got {self.NUM_CLASSES}")
        if len(self.CLASS_NAMES) != self.NUM_CLASSES:
            bad(f"CLASS_NAMES has {len(self.CLASS_NAMES)} names but NUM_CLASSES is {self.NUM_CLASSES}")
        if len(self.BACKBONE_STRIDES) != 5 or len(self.RPN_ANCHOR_SCALES) != 5:
            bad("BACKBONE_STRIDES and RPN_ANCHOR_SCALES need 5 entries (P2..P6)")
        if tuple(self.BACKBONE_STRIDES) != (4, 8, 16, 32, 64):
            bad("BACKBONE_STRIDES must be (4, 8, 16, 32, 64) for this ResNet+FPN")
        for name in ("RPN_BBOX_STD_DEV", "BBOX_STD_DEV", "MEAN_PIXEL"):
            v = getattr(self, name)
            n = 4 if name != "MEAN_PIXEL" else 3
            if len(v) != n:
                bad(f"{name} needs {n} values, got {len(v)}")
        for name in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD"):
            if not 0.0 < getattr(self, name) <= 1.0:
                bad(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.DETECTION_MIN_CONFIDENCE <= 1.0:
            bad(f"DETECTION_MIN_CONFIDENCE must be in [0, 1], got {self.DETECTION_MIN_CONFIDENCE}")
        for name in ("PRE_NMS_LIMIT", "POST_NMS_ROIS_INFERENCE", "POST_NMS_ROIS_TRAINING",
                     "DETECTION_MAX_INSTANCES", "POOL_SIZE", "MASK_POOL_SIZE", "IMAGES_PER_GPU"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.POOL_SIZE < 2 or self.MASK_POOL_SIZE < 2:
            bad("POOL_SIZE and MASK_POOL_SIZE must be >= 2 (crop-and-resize with corner-aligned samples)")
        if tuple(self.MASK_SHAPE) != (2 * self.MASK_POOL_SIZE, 2 * self.MASK_POOL_SIZE):
            bad(f"MASK_SHAPE must be twice MASK_POOL_SIZE ({self.MASK_POOL_SIZE}), got {self.MASK_SHAPE}")
        if self.RPN_ANCHOR_STRIDE != 1:
            bad("RPN_ANCHOR_STRIDE other than 1 is not supported")

    def _check_types(self, bad) -> None:
        """Each field has the type of its default (a string where a number belongs
        would fail deep inside the model); ints are accepted for floats."""
        for f in dataclasses.fields(self):
            v, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                ok = isinstance(v, bool)
            elif isinstance(default, int):
                ok = isinstance(v, int) and not isinstance(v, bool)
            elif isinstance(default, float):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            elif isinstance(default, str):
                ok = isinstance(v, str)
            elif isinstance(default, tuple):
                kinds = {type(x) for x in default} or {str}
                want = str if kinds == {str} else (int, float)
                ok = isinstance(v, tuple) and all(isinstance(x, want) and not isinstance(x, bool) for x in v) \
                    and (want is str or all(math.isfinite(x) for x in v))
            else:
                ok = True
            if not ok:
                bad(f"{f.name} must be {type(default).__name__ if not isinstance(default, tuple) else 'a list'} "
                    f"like {list(default) if isinstance(default, tuple) else default!r}, got {v!r}")

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        if not isinstance(d, dict):
            raise UserError(f"a config must be a JSON object of fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(d) - names)
        if unknown:
            raise UserError(f"unknown config fields: {', '.join(unknown)}")
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)

    @classmethod
    def from_json(cls, path: str) -> "Config":
        check_regular_file(path, what="config file")
        return cls.from_overrides(read_json_object(path, "config file"))

    @classmethod
    def from_overrides(cls, d: dict) -> "Config":
        """``{"preset": "coco", FIELD: value, ...}`` -> a validated Config (preset default: Config())."""
        if not isinstance(d, dict):
            raise UserError(f"a config must be a JSON object of fields, got {type(d).__name__}")
        d = dict(d)
        name = d.pop("preset", None)
        if name is not None and not isinstance(name, str):
            raise UserError(f"config preset must be one of {', '.join(PRESETS)}, got {name!r}")
        base = preset(name) if name is not None else Config()
        merged = base.to_dict()
        merged.update(d)
        return cls.from_dict(merged)


def _coco() -> Config:
    return Config(NAME="coco")


def _coco_eval() -> Config:
    # coco.py evaluation: DETECTION_MIN_CONFIDENCE = 0 (filter off)
    return Config(NAME="coco", DETECTION_MIN_CONFIDENCE=0.0)


def _cityscapes() -> Config:
    # Cityscapes images are 2048x1024: with MAX_DIM 1024 they become 1024x512 in a 1024 square.
    return Config(NAME="cityscapes", NUM_CLASSES=9, CLASS_NAMES=CITYSCAPES_CLASS_NAMES)


def _shapes() -> Config:
    """The compact model trained on synthetic shapes (shipped with the package)."""
    return Config(
        NAME="shapes", NUM_CLASSES=4, CLASS_NAMES=SHAPES_CLASS_NAMES,
        BACKBONE="resnet14", BACKBONE_BASE_WIDTH=16, TOP_DOWN_PYRAMID_SIZE=64, RPN_HIDDEN=128,
        FPN_CLASSIF_FC_LAYERS_SIZE=256, MASK_HEAD_CHANNELS=64,
        IMAGE_MIN_DIM=256, IMAGE_MAX_DIM=256, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
        ROI_CANONICAL_SIZE=56.0, PRE_NMS_LIMIT=2000, POST_NMS_ROIS_TRAINING=500,
        POST_NMS_ROIS_INFERENCE=250, TRAIN_ROIS_PER_IMAGE=64, MAX_GT_INSTANCES=20,
        DETECTION_MAX_INSTANCES=50, DETECTION_MIN_CONFIDENCE=0.5, LEARNING_RATE=0.01,
        IMAGES_PER_GPU=4,
    )


def _tiny() -> Config:
    """A tiny random-weights model for fast unit tests (same code paths as coco)."""
    return _shapes().replace(NAME="tiny", IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
                             RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), PRE_NMS_LIMIT=500,
                             POST_NMS_ROIS_INFERENCE=100, DETECTION_MAX_INSTANCES=20,
                             DETECTION_MIN_CONFIDENCE=0.0)


PRESETS = {
    "coco": _coco,
    "coco-eval": _coco_eval,
    "cityscapes": _cityscapes,
    "shapes": _shapes,
    "tiny": _tiny,
}


def preset(name: str) -> Config:
    """Return a named configuration, or load a JSON file (``{"preset": "coco", ...overrides}``)."""
    if name in PRESETS:
        return PRESETS[name]()
    if name.endswith(".json"):
        return Config.from_json(name)
    raise UserError(f"unknown config {name!r}; choose one of {', '.join(PRESETS)} or a .json file")

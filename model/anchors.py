"""Pyramid anchors (docs/model.md §3.3): pixels of the padded input, no half-stride
offset, ordered level (P2..P6) -> y -> x -> ratio, computed in float64 and
cast to float32 exactly like ``utils.generate_pyramid_anchors``."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def generate_anchors(scale: float, ratios: Sequence[float], shape: Tuple[int, int], feature_stride: int,
                     anchor_stride: int = 1) -> np.ndarray:
    """Anchors ``[H*W*len(ratios), 4]`` (y1, x1, y2, x2) float64 for one level."""
    scales, ratios = np.meshgrid(np.array([scale], dtype=np.float64), np.array(ratios, dtype=np.float64))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)
    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([box_centers - 0.5 * box_sizes, box_centers + 0.5 * box_sizes], axis=1)


def generate_pyramid_anchors(config) -> np.ndarray:
    """All anchors of a :class:`~mrcnn_trt.config.Config`: float32 ``[A, 4]`` pixels."""
    levels = [
        generate_anchors(s, config.RPN_ANCHOR_RATIOS, shape, stride, config.RPN_ANCHOR_STRIDE)
        for s, shape, stride in zip(config.RPN_ANCHOR_SCALES, config.BACKBONE_SHAPES, config.BACKBONE_STRIDES)
    ]
    return np.concatenate(levels, axis=0).astype(np.float32)

"""Detections as JSON: the per-image format of ``mrcnn-demo`` (also served by
``mrcnn-triton``), readable without this package::

    {"image": "a.jpg", "height": H, "width": W,
     "detections": [{"box_yxyx": [y1, x1, y2, x2],      # original-image pixels (int)
                     "class_id": 1, "class_name": "person", "score": 0.98,
                     "mask_rle": {"size": [H, W], "counts": "..."}},   # COCO RLE (pycocotools)
                    ...]}
"""
from __future__ import annotations

import numpy as np


def result_to_json(result, class_names, path: str) -> dict:
    """One ``detect`` dict (``rois [M,4]``, ``class_ids [M]``, ``scores [M]``,
    ``masks [H,W,M] uint8``) -> the JSON object above; ``path`` names the image."""
    from pycocotools import mask as mask_util

    dets = []
    for i in range(len(result["class_ids"])):
        rle = mask_util.encode(np.asfortranarray(result["masks"][:, :, i]))
        cid = int(result["class_ids"][i])
        dets.append({
            "box_yxyx": [int(v) for v in result["rois"][i]],
            "class_id": cid,
            "class_name": class_names[cid] if cid < len(class_names) else str(cid),
            "score": round(float(result["scores"][i]), 6),
            "mask_rle": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        })
    h, w = result["masks"].shape[:2]
    return {"image": path, "height": int(h), "width": int(w), "detections": dets}

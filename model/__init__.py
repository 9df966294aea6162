"""The PyTorch Mask R-CNN of multimodallearning/pytorch-mask-rcnn, modernised
(batches of N >= 1, no crash on zero detections) and exact to the original's
inference semantics (``../shared/docs/seed-model-spec.md``).

    from mrcnn_trt.model import build_model, load_weights
    model = build_model("coco")                 # or a Config
    load_weights(model, "mask_rcnn_coco.pth")   # strict, weights_only
    results = model.detect([image])             # original contract
"""
from .maskrcnn import MaskRCNN  # noqa: F401
from .checkpoint import build_model, load_weights, save_checkpoint, load_model  # noqa: F401

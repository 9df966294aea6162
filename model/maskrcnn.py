"""The Mask R-CNN network (docs/model.md §2-§3), batched, for inference and training.

``MaskRCNN(config)`` registers ``fpn``, ``rpn``, ``classifier``, ``mask`` in the
original order, so ``state_dict()`` has exactly the original keys (plus
``num_batches_tracked``, which loading treats as optional).

Inference entry points:

* :meth:`MaskRCNN.forward` (``images`` float32 [N,3,S,S] RGB 0..255, already
  resized and zero-padded; ``windows`` float32 [N,4]) -> ``detections``
  [N,D,6], ``count`` [N] int32, ``masks`` [N,D,28,28] (the detected class's
  probabilities). This is exactly the exported graph.
* :meth:`MaskRCNN.detect` (list of HxWx3 uint8 images) -> list of the original
  ``detect`` dicts (``rois``, ``class_ids``, ``scores``, ``masks``), optionally
  with every intermediate result for debugging and parity checks.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from ..config import Config
from .anchors import generate_pyramid_anchors
from .backbone import FPN, make_stages
from .backends import DEFAULT_BACKEND, make_ops
from .heads import RPN, Classifier, Mask
from .molding import mold_batch, unmold_detections


def mean_subtraction_table(mean_pixel) -> torch.Tensor:
    """``float32(v - mean[c])`` computed in float64 for every channel c and value v in
    0..255, flattened to ``[C * 256]`` (index ``256 * c + v``)."""
    v = np.arange(256, dtype=np.float64)
    table = (v[None, :] - np.asarray(mean_pixel, dtype=np.float64)[:, None]).astype(np.float32)
    return torch.from_numpy(table.reshape(-1))


class MaskRCNN(nn.Module):
    def __init__(self, config: Config, ops_backend: str = DEFAULT_BACKEND):
        super().__init__()
        self.config = config
        stages = make_stages(config.BACKBONE_STAGE_BLOCKS, config.BACKBONE_BASE_WIDTH)
        depth = config.TOP_DOWN_PYRAMID_SIZE
        self.fpn = FPN(*stages, out_channels=depth, base_width=config.BACKBONE_BASE_WIDTH)
        self.rpn = RPN(len(config.RPN_ANCHOR_RATIOS), config.RPN_ANCHOR_STRIDE, depth, config.RPN_HIDDEN)
        self.classifier = Classifier(depth, config.POOL_SIZE, config.NUM_CLASSES, config.FPN_CLASSIF_FC_LAYERS_SIZE)
        self.mask = Mask(depth, config.MASK_POOL_SIZE, config.NUM_CLASSES, config.MASK_HEAD_CHANNELS)
        # not in the state_dict, like the original's plain tensor attribute
        self.register_buffer("anchors", torch.from_numpy(generate_pyramid_anchors(config)), persistent=False)
        self.register_buffer("mean_table", mean_subtraction_table(config.MEAN_PIXEL), persistent=False)
        self.register_buffer("mean_table_offset", torch.arange(len(config.MEAN_PIXEL), dtype=torch.int64)
                             .mul_(256).view(1, -1, 1, 1), persistent=False)
        self.ops = make_ops(config, ops_backend)
        self.initialize_weights()
        # BatchNorm is frozen (inference statistics, no gradient), docs/model.md §4.3
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                for p in m.parameters():
                    p.requires_grad = False

    # ------------------------------------------------------------------ weights
    def initialize_weights(self) -> None:
        """Original initialization (docs/model.md §4.6): xavier convs, N(0, 0.01) linears."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()

    def set_ops_backend(self, backend: str) -> "MaskRCNN":
        """Which implementation of the three custom ops runs: "native" (default:
        ``torch.ops.mrcnn.*`` on the tensors' device), "torch" (the PyTorch
        references) or "cpu" (the C++ kernels called directly); see model/backends.py."""
        self.ops = make_ops(self.config, backend)
        return self

    def set_config(self, config: Config) -> "MaskRCNN":
        """Use another config of the same architecture (e.g. another
        DETECTION_MIN_CONFIDENCE); the weights stay, the ops are rebuilt."""
        self.config = config
        self.ops = make_ops(config, self.ops.name)
        return self

    def train(self, mode: bool = True):
        """Training mode keeps every BatchNorm in eval mode (frozen statistics)."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    # ------------------------------------------------------------------ pieces
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 [N,3,S,S] -> mean-subtracted network input float32 (padding becomes -mean).

        Bit-exact with the original, which computes ``float32(image) - MEAN_PIXEL`` in
        float64 and casts the result to float32 (a float32 subtraction gives other values
        for 320 of the 768 (channel, value) pairs; docs/model.md §3.2). The molded pixels
        are integers 0..255, so the exact results are a [3 * 256] table, looked up per
        pixel (an ONNX Gather in every exported graph). Inputs are rounded to the nearest integer and clamped to
        0..255 first (molded images already are)."""
        idx = images.float().round().clamp_(0, 255).to(torch.int64) + self.mean_table_offset
        return self.mean_table[idx]

    def features(self, molded: torch.Tensor) -> List[torch.Tensor]:
        """[P2, P3, P4, P5, P6] of mean-subtracted images."""
        return self.fpn(molded)

    def rpn_outputs(self, feature_maps: Sequence[torch.Tensor]):
        """RPN over P2..P6, concatenated: logits/probs [N,A,2], deltas [N,A,4]."""
        outs = [self.rpn(p) for p in feature_maps]
        logits = torch.cat([o[0] for o in outs], dim=1)
        probs = torch.cat([o[1] for o in outs], dim=1)
        deltas = torch.cat([o[2] for o in outs], dim=1)
        return logits, probs, deltas

    def classify(self, rois: torch.Tensor, mrcnn_maps: Sequence[torch.Tensor]):
        """Box head on rois [N,R,4] -> logits/probs [N,R,K], deltas [N,R,K,4]."""
        n, r = rois.shape[:2]
        crops = self.ops.pyramid_roi_align(rois, mrcnn_maps, mask=False)
        logits, probs, deltas = self.classifier(crops.reshape(n * r, *crops.shape[2:]))
        k = self.config.NUM_CLASSES
        return logits.view(n, r, k), probs.view(n, r, k), deltas.view(n, r, k, 4)

    def mask_probs(self, boxes_norm: torch.Tensor, mrcnn_maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mask head on normalized boxes [N,D,4] -> [N,D,K,28,28]."""
        n, d = boxes_norm.shape[:2]
        crops = self.ops.pyramid_roi_align(boxes_norm, mrcnn_maps, mask=True)
        m = self.mask(crops.reshape(n * d, *crops.shape[2:]))
        return m.view(n, d, *m.shape[1:])

    def valid_slots(self, count: torch.Tensor, d: int):
        """How many detection slots the mask head runs on: ``(k, sliced)``.

        Eager: k = max(count) (0 skips the head; a batch runs up to its largest
        count). ONNX export: every slot (k = d, static shapes for TensorRT), or with
        ``ops.mask_head == "valid"`` (ONNX Runtime) a data-dependent k = max(count, 1),
        which the graph computes. ``torch.export`` / ``torch.compile``: every slot
        (static shapes, no graph break)."""
        if torch.onnx.is_in_onnx_export():
            if getattr(self.ops, "mask_head", "all") != "valid":
                return d, False
            k = count.max().clamp(min=1).item()
            torch._check(k >= 1)
            torch._check(k <= d)
            return k, True
        if torch.compiler.is_compiling():
            return d, False
        k = int(count.max()) if count.numel() else 0
        return k, k < d

    def detection_masks(self, detections: torch.Tensor, count: torch.Tensor, mrcnn_maps: Sequence[torch.Tensor]):
        """Masks of the detections: ``(masks, probs)``, masks [N,D,28,28] = the
        probabilities of each detection's class in every slot, probs [N,k,K,28,28]
        = every class's, for the first k slots only.

        The mask head runs on the first k = :meth:`valid_slots` slots only; rows of
        ``masks`` at or past an image's count are zero."""
        n, d = detections.shape[:2]
        k, sliced = self.valid_slots(count, d)
        h, w = self.config.MASK_SHAPE
        if sliced and not torch.onnx.is_in_onnx_export() and k == 0:   # eager, no detection at all
            return detections.new_zeros(n, d, h, w), detections.new_zeros(n, 0, self.config.NUM_CLASSES, h, w)
        dets = detections[:, :k] if sliced else detections
        probs = self.mask_probs(dets[:, :, :4] / float(self.config.IMAGE_MAX_DIM), mrcnn_maps)
        cls = dets[:, :, 4].long()
        idx = cls.view(n, -1, 1, 1, 1).expand(-1, -1, 1, h, w)
        masks = torch.gather(probs, 2, idx).squeeze(2)                          # [N, k, 28, 28]
        if sliced:
            masks = torch.cat([masks, masks.new_zeros(n, d - k, h, w)], dim=1)
        valid = torch.arange(d, dtype=count.dtype, device=count.device).view(1, d) < count.view(n, 1)
        return masks * valid.view(n, d, 1, 1).to(masks.dtype), probs

    # ------------------------------------------------------------------ inference
    def run(self, images: torch.Tensor, windows: torch.Tensor, intermediates: bool = False) -> Dict[str, torch.Tensor]:
        """Inference on molded images; returns a dict (see :meth:`forward`).

        With ``intermediates`` the dict also holds ``molded`` (mean-subtracted
        input), ``P2``..``P6``, ``rpn_probs``, ``rpn_deltas``, ``rois``,
        ``roi_count``, ``roi_anchor_index``, ``class_probs``, ``class_deltas`` and
        ``mask_probs_all`` [N,k,K,28,28] (the first k = max(count) detection slots:
        the mask head skips the empty ones).
        """
        molded = self.normalize(images)
        maps = self.features(molded)
        _, rpn_probs, rpn_deltas = self.rpn_outputs(maps)
        rois, roi_count, anchor_index = self.ops.proposal_layer(rpn_probs[:, :, 1], rpn_deltas, self.anchors)
        mrcnn_maps = maps[:4]
        _, class_probs, class_deltas = self.classify(rois, mrcnn_maps)
        detections, count = self.ops.detection_layer(rois, roi_count, class_probs, class_deltas, windows.float())
        masks, all_masks = self.detection_masks(detections, count, mrcnn_maps)
        out = {"detections": detections, "count": count, "masks": masks}
        if intermediates:
            out.update(molded=molded, rpn_probs=rpn_probs, rpn_deltas=rpn_deltas, rois=rois, roi_count=roi_count,
                       roi_anchor_index=anchor_index, class_probs=class_probs, class_deltas=class_deltas,
                       mask_probs_all=all_masks)
            for i, p in enumerate(maps):
                out[f"P{i + 2}"] = p
        return out

    def forward(self, images: torch.Tensor, windows: torch.Tensor):
        """images float32 [N,3,S,S] RGB 0..255 (resized + zero padded), windows float32 [N,4]
        -> (detections [N,D,6], count [N] int32, masks [N,D,28,28]); rows at or past
        an image's count are zero in detections and masks."""
        out = self.run(images, windows)
        return out["detections"], out["count"], out["masks"]

    @torch.no_grad()
    def detect(self, images: Sequence[np.ndarray], return_intermediates: bool = False) -> List[Dict]:
        """Run the original ``detect`` contract on a batch of HxWx3 images.

        Returns per image a dict: ``rois`` int32 [M,4] (y1, x1, y2, x2) in
        original-image pixels, ``class_ids`` int32 [M], ``scores`` float32 [M],
        ``masks`` uint8 [H,W,M]. With ``return_intermediates`` each dict also
        has ``intermediates``: numpy arrays of this image's slice of every
        tensor of :meth:`run`, plus ``image`` (the padded uint8 input),
        ``window`` and ``detections`` [count, 6].
        """
        if len(images) == 0:
            return []
        was_training = self.training
        self.eval()
        try:
            batch, windows, infos = mold_batch(images, self.config)
            dev = self.anchors.device
            out = self.run(torch.from_numpy(batch).to(dev), torch.from_numpy(windows).to(dev),
                           intermediates=return_intermediates)
        finally:
            self.train(was_training)
        dets = out["detections"].cpu().numpy()
        counts = out["count"].cpu().numpy()
        masks = out["masks"].float().cpu().numpy()
        results = []
        for i, info in enumerate(infos):
            r = unmold_detections(dets[i], int(counts[i]), masks[i], info)
            if return_intermediates:
                inter = {k: v[i].detach().float().cpu().numpy() if k != "roi_count" else int(v[i])
                         for k, v in out.items() if k not in ("count",)}
                inter["image"] = batch[i].transpose(1, 2, 0).astype(np.uint8)
                inter["window"] = np.array(info.window, dtype=np.int32)
                inter["detections"] = dets[i][: int(counts[i])]
                inter["masks"] = masks[i][: int(counts[i])]
                inter["mask_probs_all"] = inter["mask_probs_all"][: int(counts[i])]
                inter["roi_anchor_index"] = out["roi_anchor_index"][i].cpu().numpy()
                inter["rois"] = inter["rois"][: inter["roi_count"]]
                inter["roi_anchor_index"] = inter["roi_anchor_index"][: inter["roi_count"]]
                r["intermediates"] = inter
            results.append(r)
        return results

"""Training: targets on hand-made cases, losses, the loop (loss goes down, resume, frozen layers),
fine-tuning init. Uses the ``tiny`` preset and in-memory synthetic shapes; a few seconds each."""
import hashlib
import json
import math
import os

import numpy as np
import pytest
import torch

from mrcnn_trt.config import CITYSCAPES_CLASS_NAMES, COCO_CLASS_NAMES, preset
from mrcnn_trt.data.base import Sample, extract_bboxes
from mrcnn_trt.model import build_model, save_checkpoint
from mrcnn_trt.model.anchors import generate_pyramid_anchors
from mrcnn_trt.model.checkpoint import read_checkpoint
from mrcnn_trt.plugins.reference import apply_box_deltas
from mrcnn_trt.train import losses as L
from mrcnn_trt.train.finetune import class_mapping, init_from_other_classes
from mrcnn_trt.train.loop import (LAYER_REGEX, forward_losses, lr_at, make_optimizer, set_trainable,
                                  train_step)
from mrcnn_trt.train.targets import (box_refinement, build_rpn_targets, compute_overlaps, detection_targets,
                                     minimize_mask, prepare_sample)

STD = np.array([0.1, 0.1, 0.2, 0.2])


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: these small models gain nothing from more, and on a shared CPU
    oversubscribed threads make the steps 10-20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny():
    return preset("tiny")


# ----------------------------------------------------------------------------- RPN targets
def test_rpn_targets_hand_case():
    cfg = tiny()
    gt = np.array([[0, 0, 10, 10]], np.float32)
    anchors = np.array([
        [0, 0, 10, 10],     # IoU 1 -> positive
        [0, 0, 10, 20],     # IoU 0.5 -> neutral
        [50, 50, 60, 60],   # IoU 0 -> negative
        [0, 0, 10, 14],     # IoU 100/140 = 0.714 -> positive
        [0, 5, 10, 15],     # IoU 50/150 = 0.333 -> neutral
        [0, 8, 10, 18],     # IoU 20/180 = 0.11 -> negative
    ], np.float32)
    match, bbox = build_rpn_targets(anchors, np.array([1]), gt, cfg, np.random.default_rng(0))
    np.testing.assert_array_equal(match, [1, 0, -1, 1, 0, -1])
    assert bbox.shape == (cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)
    # positives in ascending anchor order: anchor 0 (exact: zero deltas), then anchor 3
    np.testing.assert_allclose(bbox[0], 0, atol=1e-7)
    expected = np.array([0.0, (5 - 7) / 14, 0.0, math.log(10 / 14)]) / STD
    np.testing.assert_allclose(bbox[1], expected, rtol=1e-5)
    np.testing.assert_array_equal(bbox[2:], 0)


def test_rpn_targets_best_anchor_crowd_and_zero_boxes():
    cfg = tiny()
    anchors = np.array([[0, 0, 10, 10], [0, 0, 30, 30], [100, 100, 110, 110], [200, 200, 210, 210]], np.float32)
    # GT best matched by anchor 1 with IoU 0.44 < 0.7: still positive (argmax rule)
    gt = np.array([[0, 0, 20, 20],
                   [100, 100, 101, 105],   # crowd touching anchor 2 (IoU 0.05): anchor 2 not negative
                   [5, 5, 5, 9]],          # zero-height box (vanished mask): ignored, no log(0)
                  np.float32)
    match, bbox = build_rpn_targets(anchors, np.array([2, -1, 3]), gt, cfg, np.random.default_rng(0))
    assert compute_overlaps(anchors[1:2], gt[:1])[0, 0] == pytest.approx(400 / 900)
    # anchor 0: IoU 100/400 = 0.25 < 0.3 -> negative
    np.testing.assert_array_equal(match, [-1, 1, 0, -1])
    assert np.all(np.isfinite(bbox))
    np.testing.assert_allclose(bbox[0], np.array([-5 / 30, -5 / 30, math.log(20 / 30), math.log(20 / 30)]) / STD,
                               rtol=1e-5)


def test_rpn_targets_subsampling_is_seeded_and_bounded():
    cfg = tiny()
    # 400 anchors equal to the GT box (all positive), 400 far away (all negative)
    anchors = np.concatenate([np.tile([[10, 10, 40, 40]], (400, 1)), np.tile([[80, 80, 90, 90]], (400, 1))])
    gt = np.array([[10, 10, 40, 40]], np.float32)
    m1, _ = build_rpn_targets(anchors, np.array([1]), gt, cfg, np.random.default_rng(5))
    m2, _ = build_rpn_targets(anchors, np.array([1]), gt, cfg, np.random.default_rng(5))
    m3, _ = build_rpn_targets(anchors, np.array([1]), gt, cfg, np.random.default_rng(6))
    assert (m1 == 1).sum() == 128 and (m1 == -1).sum() == 128
    assert np.all(m1[:400] >= 0) and np.all(m1[400:] <= 0)
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(m1, m3)


def test_rpn_targets_only_crowds_gives_only_negatives_away_from_them():
    cfg = tiny()
    anchors = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    match, bbox = build_rpn_targets(anchors, np.array([-1]), np.array([[0, 0, 12, 12]]), cfg,
                                    np.random.default_rng(0))
    np.testing.assert_array_equal(match, [0, -1])
    np.testing.assert_array_equal(bbox, 0)


# ----------------------------------------------------------------------------- detection targets
def test_detection_targets_hand_case():
    cfg = tiny()
    gt_boxes = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    gt_masks = torch.ones((1, 56, 56), dtype=torch.bool)
    proposals = torch.tensor([
        [0.12, 0.1, 0.28, 0.42],  # IoU 0.032/0.0592 = 0.54: positive; 0.6 GT widths past the right edge
        [0.6, 0.6, 0.8, 0.8],    # IoU 0: negative
        [0.7, 0.1, 0.9, 0.3],    # IoU 0: negative
        [0.5, 0.5, 0.55, 0.55],  # IoU 0: negative
    ])
    t = detection_targets(proposals, torch.tensor([2]), gt_boxes, gt_masks, cfg, np.random.default_rng(0))
    # one positive -> int(1/0.33 - 1) = 2 negatives
    assert t.num_positive == 1 and t.rois.shape == (3, 4)
    torch.testing.assert_close(t.rois[0], proposals[0])
    assert t.class_ids.tolist() == [2, 0, 0]
    expected = torch.tensor([0.0, (0.2 - 0.26) / 0.32, math.log(0.2 / 0.16), math.log(0.2 / 0.32)])
    expected = expected / torch.tensor(STD).float()
    torch.testing.assert_close(t.deltas[0], expected, rtol=1e-4, atol=1e-5)
    assert torch.all(t.deltas[1:] == 0)
    # mask: ROI rows inside the GT box (all ones); the ROI spans 1.6 GT widths: the x samples
    # i * 1.6 * 55/27 lie inside the 56-px mini-mask for i <= 16, the rest are extrapolated (0)
    assert t.masks.shape == (1, 28, 28)
    expected_mask = torch.zeros(28, 28)
    expected_mask[:, :17] = 1
    torch.testing.assert_close(t.masks[0], expected_mask)


def test_detection_targets_mask_follows_gt_frame():
    cfg = tiny()
    # mini-mask: top half foreground; ROI = GT box in y, inside it in x -> top half of the 28x28 target
    gt_masks = torch.zeros((1, 56, 56), dtype=torch.bool)
    gt_masks[0, :28] = True
    box = torch.tensor([[0.2, 0.2, 0.6, 0.5]])
    roi = torch.tensor([[0.2, 0.25, 0.6, 0.45]])
    t = detection_targets(roi, torch.tensor([1]), box, gt_masks, cfg, np.random.default_rng(0))
    # sample row i at y = i*55/27: < 27 for i <= 13 (1), > 28 for i >= 14 (0)
    assert t.masks[0, :14].min() == 1 and t.masks[0, 14:].max() == 0
    # the same mini-mask flipped upside down (bottom half) gives the flipped target
    t2 = detection_targets(roi, torch.tensor([1]), box, gt_masks.flip(1), cfg, np.random.default_rng(0))
    assert t2.masks[0, :14].max() == 0 and t2.masks[0, 14:27].min() == 1


def test_detection_targets_crowd_caps_and_empty():
    cfg = tiny()
    gt_boxes = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]])
    ids = torch.tensor([1, -3])   # second one is a crowd
    masks = torch.ones((2, 56, 56), dtype=torch.bool)
    # 50 positive proposals (copies of the GT), plus proposals on the crowd (not negatives) and free ones
    props = torch.cat([gt_boxes[:1].repeat(50, 1), torch.tensor([[0.6, 0.6, 0.8, 0.8]]).repeat(20, 1),
                       torch.tensor([[0.4, 0.0, 0.5, 0.1]]).repeat(5, 1)])
    t = detection_targets(props, ids, gt_boxes, masks, cfg, np.random.default_rng(0))
    n_pos = int(cfg.TRAIN_ROIS_PER_IMAGE * cfg.ROI_POSITIVE_RATIO)   # 21 for tiny (64 * 0.33)
    assert t.num_positive == n_pos
    negs = t.rois[n_pos:]
    assert negs.shape[0] == 5   # only the crowd-free ones, fewer than int(21/0.33 - 21) = 42
    torch.testing.assert_close(negs, torch.tensor([[0.4, 0.0, 0.5, 0.1]]).repeat(5, 1))
    assert torch.all(t.class_ids[:n_pos] == 1)
    # no proposal with IoU >= 0.5 -> nothing (the original's behaviour)
    t = detection_targets(props[-5:], ids, gt_boxes, masks, cfg, np.random.default_rng(0))
    assert t.rois.shape == (0, 4) and t.masks.shape == (0, 28, 28)
    # no GT at all, or only zero boxes -> nothing, no NaN
    t = detection_targets(props, torch.tensor([1]), torch.tensor([[0.2, 0.2, 0.2, 0.4]]), masks[:1], cfg,
                          np.random.default_rng(0))
    assert t.rois.shape[0] == 0


def test_box_refinement_inverts_apply_box_deltas():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (20, 2))
    boxes = np.concatenate([a, a + rng.uniform(1, 40, (20, 2))], 1)
    b = rng.uniform(0, 50, (20, 2))
    gts = np.concatenate([b, b + rng.uniform(1, 40, (20, 2))], 1)
    d = box_refinement(boxes, gts)
    back = apply_box_deltas(torch.tensor(boxes), torch.tensor(d)).numpy()
    np.testing.assert_allclose(back, gts, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- masks / samples
def test_minimize_mask_keeps_all_ones_crop():
    masks = np.zeros((40, 40, 3), bool)
    masks[5:15, 5:25, 0] = True                    # a full rectangle: crop is all ones
    masks[30:40, 0:20, 1] = True                   # bottom half of its box (20, 0, 40, 20)
    masks[20, 0, 1] = True                         # one pixel makes the box start at row 20
    boxes = extract_bboxes(masks)
    boxes[2] = 0                                   # an empty one
    mini = minimize_mask(boxes, masks, (56, 56))
    assert mini.shape == (3, 56, 56)
    assert mini[0].all()                           # the original turned this into all zeros
    assert not mini[1, :26, 4:].any() and mini[1, 29:].all()
    assert not mini[2].any()


def _sample(masks, class_ids, h=100, w=120):
    img = np.full((h, w, 3), 90, np.uint8)
    masks = np.asarray(masks, bool).reshape(h, w, -1)
    return Sample(image=img, masks=masks, class_ids=np.asarray(class_ids, np.int32), boxes=extract_bboxes(masks),
                  image_id=1, original_size=(h, w))


def test_prepare_sample_skips_and_drops():
    cfg = tiny()
    anchors = generate_pyramid_anchors(cfg)
    rng = np.random.default_rng(0)
    m = np.zeros((100, 120, 2), bool)
    m[10:40, 20:60, 0] = True
    m[50:90, 50:100, 1] = True
    assert prepare_sample(_sample(m[:, :, :0], []), cfg, anchors, rng) is None          # no GT
    assert prepare_sample(_sample(m, [-1, -2]), cfg, anchors, rng) is None               # only crowds
    # an instance of one pixel in a 1000x1200 image vanishes when resized to 128: dropped, not log(0)
    big = np.zeros((1000, 1200, 2), bool)
    big[100:400, 200:600, 0] = True
    big[999, 1199, 1] = True
    s = prepare_sample(_sample(big, [1, 2], 1000, 1200), cfg, anchors, rng)
    assert s is not None and s.gt_class_ids.tolist() == [1]
    assert s.image.shape == (128, 128, 3) and s.gt_masks.shape == (1, 56, 56) and s.gt_masks[0].all()
    assert np.all(np.isfinite(s.rpn_bbox)) and (s.rpn_match == 1).sum() >= 1
    # window of a 1000x1200 image at 128: 107x128 centred vertically -> box y from 10 + 100*0.10667
    y1, x1, y2, x2 = s.window
    assert (x1, x2) == (0, 128) and y2 - y1 == 107
    np.testing.assert_allclose(s.gt_boxes[0], [y1 + 10.7, 21.3, y1 + 42.7, 64.0], atol=1.01)


def test_prepare_sample_flip_mirrors_boxes():
    cfg = tiny()
    anchors = generate_pyramid_anchors(cfg)
    m = np.zeros((128, 128, 1), bool)
    m[10:40, 5:30, 0] = True
    flipped = plain = None
    for seed in range(20):
        s = prepare_sample(_sample(m, [1], 128, 128), cfg, anchors, np.random.default_rng(seed), augment=True)
        if s.gt_boxes[0, 1] == 5:
            plain = s
        else:
            flipped = s
    assert plain is not None and flipped is not None
    np.testing.assert_array_equal(flipped.gt_boxes[0], [10, 128 - 30, 40, 128 - 5])
    # validation samples are never flipped
    for seed in range(10):
        s = prepare_sample(_sample(m, [1], 128, 128), cfg, anchors, np.random.default_rng(seed), augment=False)
        assert s.gt_boxes[0, 1] == 5


# ----------------------------------------------------------------------------- losses
def test_losses_hand_values():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]]], requires_grad=True)
    match = torch.tensor([[1, -1, 0]])
    expected = (-math.log(math.exp(0) / (math.exp(2) + 1)) - math.log(math.exp(0) / (1 + math.exp(1)))) / 2
    assert L.rpn_class_loss(match, logits).detach().item() == pytest.approx(expected, rel=1e-6)

    deltas = torch.zeros((1, 3, 4))
    deltas[0, 0] = torch.tensor([0.5, 2.0, 0.0, 0.0])
    target = torch.zeros((1, 8, 4))
    # smooth-L1 (beta 1): 0.5^2/2 = 0.125 and 2 - 0.5 = 1.5, mean over 4 elements
    assert float(L.rpn_bbox_loss(target, match, deltas)) == pytest.approx((0.125 + 1.5) / 4)

    pred = torch.zeros((2, 3, 4))
    pred[0, 2] = 1.0                     # the GT class (2) of ROI 0
    pred[0, 1] = 100.0                   # other classes are ignored
    ids = torch.tensor([2, 0])           # ROI 1 is a negative: no box loss
    assert float(L.mrcnn_bbox_loss(torch.zeros((2, 4)), ids, pred)) == pytest.approx(0.5)

    mlog = torch.full((1, 3, 28, 28), -50.0)
    mlog[0, 1] = 0.0                     # GT class 1: sigmoid 0.5 everywhere -> BCE log(2)
    assert float(L.mrcnn_mask_loss(torch.ones((1, 28, 28)), torch.tensor([1]), mlog)) == pytest.approx(math.log(2))


def test_losses_are_zero_with_gradient_when_empty():
    w = torch.ones((), requires_grad=True)
    empty = [
        L.rpn_class_loss(torch.zeros((1, 3), dtype=torch.int8), torch.zeros((1, 3, 2)) * w),
        L.rpn_bbox_loss(torch.zeros((1, 4, 4)), torch.tensor([[0, -1, 0]]), torch.zeros((1, 3, 4)) * w),
        L.mrcnn_class_loss(torch.zeros(0, dtype=torch.long), torch.zeros((0, 4)) * w),
        L.mrcnn_bbox_loss(torch.zeros((2, 4)), torch.tensor([0, 0]), torch.zeros((2, 4, 4)) * w),
        L.mrcnn_mask_loss(torch.zeros((0, 28, 28)), torch.zeros(0, dtype=torch.long), torch.zeros((0, 4, 28, 28)) * w),
    ]
    for loss in empty:
        assert loss.shape == () and loss.detach().item() == 0.0 and loss.requires_grad
    sum(empty).backward()
    assert float(w.grad) == 0.0


# ----------------------------------------------------------------------------- the loop
def _batch(cfg, n=4, seed=0):
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset

    ds = SyntheticShapesDataset(n, seed=seed, size=(128, 128), max_instances=4, min_size=12)
    anchors = generate_pyramid_anchors(cfg)
    return [prepare_sample(ds[i], cfg, anchors, np.random.default_rng(i)) for i in range(n)]


def test_few_steps_lower_the_loss():
    cfg = tiny()
    torch.manual_seed(0)
    model = build_model(cfg)
    set_trainable(model, "all")
    opt = make_optimizer(model, 0.01, 0.9, 1e-4)
    samples = _batch(cfg)

    def loss_now():
        with torch.no_grad():
            model.train()
            ls = forward_losses(model, samples, np.random.default_rng(123))
        return {k: float(v) for k, v in ls.items()}

    before = loss_now()
    for step in range(25):
        out = train_step(model, opt, samples, np.random.default_rng(step), 5.0)
        assert all(math.isfinite(v) for v in out.values())
    after = loss_now()
    assert sum(after.values()) < 0.6 * sum(before.values()), (before, after)
    assert after["rpn_class"] < before["rpn_class"] and after["rpn_bbox"] < before["rpn_bbox"]


def test_layers_heads_leaves_backbone_bit_identical_and_bn_frozen():
    cfg = tiny()
    torch.manual_seed(0)
    model = build_model(cfg)
    names = set_trainable(model, "heads")
    assert names and all(not n.startswith("fpn.C") for n in names)
    assert all(not ("bn" in n) for n in names)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, 0.02, 0.9, 1e-4)
    samples = _batch(cfg, 2)
    for step in range(3):
        train_step(model, opt, samples, np.random.default_rng(step), 5.0)
    after = model.state_dict()
    for k, v in before.items():
        if k.startswith("fpn.C") or ".bn" in k or "downsample.1" in k:
            assert torch.equal(v, after[k]), k          # backbone and all BN statistics untouched
    assert not torch.equal(before["rpn.conv_class.weight"], after["rpn.conv_class.weight"])
    assert not torch.equal(before["fpn.P2_conv1.weight"], after["fpn.P2_conv1.weight"])
    # a later stage re-enables the backbone (the original never did), BN stays frozen
    names = set_trainable(model, "4+")
    assert any(n.startswith("fpn.C4.") for n in names) and not any(n.startswith("fpn.C3.") for n in names)
    assert model.fpn.C4[0].conv1.weight.requires_grad and not model.fpn.C4[0].bn1.weight.requires_grad
    assert not model.fpn.C4[0].downsample[1].weight.requires_grad
    names = set_trainable(model, "all")
    assert model.fpn.C1[0].weight.requires_grad and not model.fpn.C1[1].weight.requires_grad
    assert set(LAYER_REGEX) == {"heads", "3+", "4+", "5+", "all"}


def test_lr_schedule():
    assert lr_at(0, 1000, 0.01, "cosine", 100) == pytest.approx(0.001)
    assert lr_at(100, 1000, 0.01, "cosine", 100) == pytest.approx(0.01)
    assert lr_at(999, 1000, 0.01, "cosine", 100) == pytest.approx(0.0001, rel=0.01)
    assert lr_at(800, 1000, 0.01, "step", 0) == pytest.approx(0.001)
    assert lr_at(500, 1000, 0.01, "constant", 0) == 0.01


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _train_cli(out, *extra):
    from mrcnn_trt.train.cli import main

    argv = ["--dataset", "shapes", "--config", "tiny", "--synthetic-images", "8", "--batch", "2",
            "--steps-per-epoch", "2", "--val-steps", "1", "--workers", "0", "--warmup-steps", "0",
            "--layers", "all", "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0


def test_resume_continues_from_saved_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("MRCNN_PROGRESS", "0")
    # reference: 2 epochs in one go
    _train_cli(tmp_path / "full", "--weights", "none", "--epochs", "2", "--schedule", "constant")
    # interrupted: 1 epoch, then resume with --weights last up to epoch 2
    _train_cli(tmp_path / "part", "--weights", "none", "--epochs", "1", "--schedule", "constant")
    first = _sha(tmp_path / "part" / "epoch_0001.pth")
    _, extra = read_checkpoint(str(tmp_path / "part" / "last.pth"))
    assert extra["epoch"] == 1 and extra["global_step"] == 2 and extra["optimizer"]["momentum_buffers"]
    _train_cli(tmp_path / "part", "--weights", "last", "--epochs", "2", "--schedule", "constant")
    assert _sha(tmp_path / "part" / "epoch_0001.pth") == first          # epoch 1 not redone
    sd_part, extra = read_checkpoint(str(tmp_path / "part" / "last.pth"))
    assert extra["epoch"] == 2 and extra["global_step"] == 4
    assert [e["epoch"] for e in extra["history"]["epochs"]] == [1, 2]
    # same weights as the uninterrupted run: momentum, LR schedule and sampling continued exactly
    sd_full, _ = read_checkpoint(str(tmp_path / "full" / "last.pth"))
    for k in sd_full:
        torch.testing.assert_close(sd_part[k], sd_full[k], rtol=1e-5, atol=1e-6, msg=k)
    hist = json.loads((tmp_path / "part" / "losses.json").read_text())
    assert len(hist["epochs"]) == 2 and hist["epochs"][1]["val"]
    assert (tmp_path / "part" / "losses.png").stat().st_size > 1000


def test_trainer_calls_its_hooks_in_order(tmp_path):
    """The trainer's events for 2 epochs of 2 steps, in order; a registered hook runs after the
    default ones: it sees each step's losses, the epoch saved, the final weights exported."""
    from mrcnn_trt.data.synthetic import SyntheticShapesDataset
    from mrcnn_trt.train.hooks import HookBase
    from mrcnn_trt.train.loop import TrainOptions, Trainer

    class Recorder(HookBase):
        def __init__(self):
            self.events = []

        def before_train(self):
            self.events.append("before_train")

        def before_epoch(self):
            self.events.append(("epoch", self.trainer.epoch))

        def before_step(self):
            self.events.append(("step", self.trainer.state.global_step))

        def after_step(self):
            assert set(self.trainer.outputs) == set(L.LOSS_NAMES) | {"loss", "grad_norm"}
            self.events.append(("stepped", self.trainer.state.global_step))

        def after_epoch(self):
            t = self.trainer
            assert t.state.epoch == t.epoch and os.path.exists(t.checkpoint_path(t.epoch))
            self.events.append(("saved", t.epoch, t.state.global_step))

        def after_train(self):
            assert os.path.exists(self.trainer.opts.export)
            self.events.append("after_train")

    cfg = tiny()
    torch.manual_seed(0)
    model = build_model(cfg)
    ds = SyntheticShapesDataset(4, seed=0, size=(128, 128), max_instances=4, min_size=12)
    opts = TrainOptions(out_dir=str(tmp_path / "run"), epochs=2, layers="all", batch=2, steps_per_epoch=2,
                        val_steps=0, workers=0, warmup_steps=0, quiet=True, export=str(tmp_path / "final.pth"))
    trainer = Trainer(model, ds, None, opts)
    rec = Recorder()
    trainer.register_hooks([rec])
    state = trainer.train()
    assert rec.events == ["before_train",
                          ("epoch", 1), ("step", 0), ("stepped", 0), ("step", 1), ("stepped", 1), ("saved", 1, 2),
                          ("epoch", 2), ("step", 2), ("stepped", 2), ("step", 3), ("stepped", 3), ("saved", 2, 4),
                          "after_train"]
    assert state.global_step == 4 and [e["epoch"] for e in state.history["epochs"]] == [1, 2]


def test_cli_user_errors(tmp_path, capsys):
    from mrcnn_trt.train.cli import main

    assert main(["--dataset", "shapes", "--weights", "last", "--epochs", "1", "--out", str(tmp_path)]) != 0
    assert "no checkpoint to resume" in capsys.readouterr().err
    assert main(["--dataset", "coco", "--weights", "none", "--epochs", "1", "--out", str(tmp_path)]) != 0
    assert "--data-root" in capsys.readouterr().err


# ----------------------------------------------------------------------------- fine-tuning init
def test_class_mapping_coco_to_cityscapes():
    m = class_mapping(COCO_CLASS_NAMES, CITYSCAPES_CLASS_NAMES)
    named = {CITYSCAPES_CLASS_NAMES[t]: COCO_CLASS_NAMES[s] for t, s in m.items()}
    assert named == {"BG": "BG", "person": "person", "car": "car", "truck": "truck", "bus": "bus",
                     "train": "train", "motorcycle": "motorcycle", "bicycle": "bicycle"}
    assert 2 not in m   # rider


def test_finetune_init_copies_matching_coco_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MRCNN_PROGRESS", "0")
    # a coco-layout (81 classes) source model with the tiny network, saved in the original plain format
    src_cfg = tiny().replace(NUM_CLASSES=81, CLASS_NAMES=COCO_CLASS_NAMES)
    torch.manual_seed(1)
    src = build_model(src_cfg)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / "coco_like.pth"
    save_checkpoint(str(path), src, original_format=True)
    sd = src.state_dict()

    dst_cfg = tiny().replace(NUM_CLASSES=9, CLASS_NAMES=CITYSCAPES_CLASS_NAMES)
    torch.manual_seed(2)
    dst = build_model(dst_cfg)
    fresh = {k: v.clone() for k, v in dst.state_dict().items()}
    rep = init_from_other_classes(dst, read_checkpoint(str(path))[0], COCO_CLASS_NAMES)
    assert rep["fresh_classes"] == ["rider"]
    out = dst.state_dict()
    coco = {n: i for i, n in enumerate(COCO_CLASS_NAMES)}
    for t, name in enumerate(CITYSCAPES_CLASS_NAMES):
        w_cls, b_cls = out["classifier.linear_class.weight"][t], out["classifier.linear_class.bias"][t]
        w_box = out["classifier.linear_bbox.weight"][4 * t:4 * t + 4]
        w_mask = out["mask.conv5.weight"][t]
        if name == "rider":
            assert torch.equal(w_cls, fresh["classifier.linear_class.weight"][t])
            assert torch.equal(w_mask, fresh["mask.conv5.weight"][t])
            continue
        s = coco[name]
        assert torch.equal(w_cls, sd["classifier.linear_class.weight"][s]), name
        assert torch.equal(b_cls, sd["classifier.linear_class.bias"][s]), name
        assert torch.equal(w_box, sd["classifier.linear_bbox.weight"][4 * s:4 * s + 4]), name
        assert torch.equal(out["classifier.linear_bbox.bias"][4 * t:4 * t + 4],
                           sd["classifier.linear_bbox.bias"][4 * s:4 * s + 4]), name
        assert torch.equal(w_mask, sd["mask.conv5.weight"][s]), name
        assert torch.equal(out["mask.conv5.bias"][t], sd["mask.conv5.bias"][s]), name
    # everything else comes from the source
    for k in ("fpn.C1.0.weight", "rpn.conv_bbox.weight", "classifier.conv1.weight", "mask.deconv.weight"):
        assert torch.equal(out[k], sd[k])

    # the same through mrcnn-train on a small synthetic Cityscapes-format dataset
    from mrcnn_trt.data.synthetic import write_dataset
    from mrcnn_trt.train.cli import main

    root = tmp_path / "cs"
    write_dataset(str(root), fmt="cityscapes", num_images=2, seed=0, split="train", size=(128, 64),
                  show_progress=False)
    cfg_json = json.dumps({"preset": "tiny", "NUM_CLASSES": 9, "CLASS_NAMES": list(CITYSCAPES_CLASS_NAMES)})
    rc = main(["--dataset", "cityscapes", "--data-root", str(root), "--weights", str(path), "--config", cfg_json,
               "--layers", "heads", "--epochs", "1", "--steps-per-epoch", "1", "--batch", "1", "--workers", "0",
               "--val-split", "none", "--out", str(tmp_path / "run")])
    assert rc == 0
    assert "fresh: rider" in capsys.readouterr().out
    trained, extra = read_checkpoint(str(tmp_path / "run" / "last.pth"))
    assert extra["config"]["NUM_CLASSES"] == 9 and trained["classifier.linear_class.weight"].shape[0] == 9
    assert torch.equal(trained["fpn.C2.0.conv1.weight"], sd["fpn.C2.0.conv1.weight"])   # heads only


def test_imagenet_weights_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MRCNN_PROGRESS", "0")
    torch.manual_seed(3)
    m = build_model(tiny())
    sd = {k: v + 1 for k, v in m.state_dict().items() if k.startswith("fpn.C1.") or k.startswith("fpn.C2.")}
    sd["fc.weight"] = torch.zeros(3)                  # unknown name
    path = tmp_path / "imagenet.pth"
    torch.save(sd, path)

    _train_cli(tmp_path / "run", "--weights", "imagenet", "--imagenet-weights", str(path), "--epochs", "1",
               "--layers", "heads")
    text = capsys.readouterr().out
    assert "loaded" in text and "1 unknown" in text
    trained, _ = read_checkpoint(str(tmp_path / "run" / "last.pth"))
    assert torch.equal(trained["fpn.C1.0.weight"], sd["fpn.C1.0.weight"])

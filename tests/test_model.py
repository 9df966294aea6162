"""The PyTorch model against the spec's worked examples and independent references."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrcnn_trt.config import preset
from mrcnn_trt.errors import UserError
from mrcnn_trt.model import build_model, load_weights, save_checkpoint
from mrcnn_trt.plugins.reference import apply_box_deltas, box_iou_plus1, clip_boxes, crop_and_resize, nms, roi_levels
from mrcnn_trt.model.anchors import generate_pyramid_anchors
from mrcnn_trt.model.checkpoint import read_checkpoint
from mrcnn_trt.model.loading import load_imagenet_weights
from mrcnn_trt.model.molding import bytescale, compute_scale, load_image, mold_image, unmold_mask


# ----------------------------------------------------------------- spec worked examples
def test_anchor_count_order_and_first_anchor():
    a = generate_pyramid_anchors(preset("coco"))
    assert a.shape == (261888, 4) and a.dtype == np.float32
    # ratio varies fastest: index 1 is P2 (0,0) ratio 1
    np.testing.assert_array_equal(a[1], [-16, -16, 16, 16])
    # ratio 0.5 is tall: h = 32*sqrt(2)
    assert a[0][2] - a[0][0] == pytest.approx(32 * np.sqrt(2), rel=1e-6)
    # second location: x advances by the stride 4
    np.testing.assert_array_equal(a[4], [-16, -12, 16, 20])
    counts = [196608, 49152, 12288, 3072, 768]
    starts = np.cumsum([0] + counts)
    # first anchor of P6 (stride 64, scale 512) at (0, 0), ratio 1
    np.testing.assert_allclose(a[starts[4] + 1], [-256, -256, 256, 256])
    # last anchor of P2 is centred at (255*4, 255*4)
    cy = (a[starts[1] - 1][0] + a[starts[1] - 1][2]) / 2
    assert cy == 1020


def test_molding_example_640x427():
    img = np.zeros((427, 640, 3), np.uint8)
    assert compute_scale(427, 640, 800, 1024) == 1.6
    padded, info = mold_image(img, 800, 1024)
    assert padded.shape == (1024, 1024, 3)
    assert info.scale == 1.6
    assert info.window == (170, 0, 853, 1024)


def test_molding_pads_with_zero_before_mean_subtraction():
    img = np.full((427, 640, 3), 200, np.uint8)
    m = build_model("tiny")
    padded, info = mold_image(img, 128, 128)
    x = m.normalize(torch.from_numpy(padded.astype(np.float32).transpose(2, 0, 1)[None]))
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), -np.array(m.config.MEAN_PIXEL, np.float32))
    y1 = info.window[0]
    np.testing.assert_allclose(x[0, :, y1 + 1, 5].numpy(), 200 - np.array(m.config.MEAN_PIXEL, np.float32), atol=1)


@pytest.mark.parametrize("preset_name", ["coco", "shapes"])
def test_mean_subtraction_is_float64_then_float32(preset_name):
    """The original promotes float32(image) - MEAN_PIXEL to float64 and casts back: every
    pixel value 0..255 must give exactly that float32 (a float32 Sub differs in 320 of 768)."""
    m = build_model("tiny").eval()
    mean = np.asarray(preset(preset_name).MEAN_PIXEL, np.float64)
    from mrcnn_trt.model.maskrcnn import mean_subtraction_table

    m.mean_table = mean_subtraction_table(mean)
    v = np.arange(256, dtype=np.float32)
    img = np.broadcast_to(v[None, :, None], (3, 256, 4)).copy()[None]      # [1, 3, 256, 4]
    got = m.normalize(torch.from_numpy(img)).numpy()
    want = (img.astype(np.float64) - mean.reshape(1, 3, 1, 1)).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert (img - mean.astype(np.float32).reshape(1, 3, 1, 1) != want).any()   # the float32 way is not exact


@pytest.mark.parametrize("side,level", [(224, 4), (112, 3), (56, 2), (448, 5), (1000, 5), (10, 2), (300, 4),
                                        (170, 4), (150, 3), (0, 2)])
def test_roi_level_hand_computed(side, level):
    # level = round(4 + log2(side/224)) clamped to [2, 5]; e.g. 300 -> 4.42 -> 4, 150 -> 3.42 -> 3, 170 -> 3.60 -> 4
    b = torch.tensor([[[100.0, 100.0, 100.0 + side, 100.0 + side]]]) / 1024
    assert int(roi_levels(b, 1024)[0, 0]) == level


def test_roi_level_degenerate_boxes_go_to_level_2():
    b = torch.tensor([[0.5, 0.5, 0.4, 0.6], [0.2, 0.2, 0.2, 0.2], [float("nan"), 0, 1, 1]])
    assert roi_levels(b, 1024).tolist() == [2, 2, 2]


# ----------------------------------------------------------------- references vs independent implementations
def _random_boxes(g, k, lo=0.0, hi=1.0):
    a = torch.rand(k, 2, generator=g) * (hi - lo) + lo
    b = torch.rand(k, 2, generator=g) * (hi - lo) + lo
    return torch.cat([torch.minimum(a, b), torch.maximum(a, b)], 1)[:, [0, 1, 2, 3]]


def test_crop_and_resize_matches_grid_sample_align_corners():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 5, 13, 17, generator=g)
    yx1 = torch.rand(40, 2, generator=g) * 0.6
    yx2 = yx1 + torch.rand(40, 2, generator=g) * 0.4
    boxes = torch.cat([yx1, yx2], 1)  # in range [0, 1]
    ind = torch.randint(0, 2, (40,), generator=g)
    out = crop_and_resize(img, boxes, ind, 7)
    i = torch.arange(7, dtype=torch.float32)
    ys = boxes[:, 0:1] + i * (boxes[:, 2:3] - boxes[:, 0:1]) / 6
    xs = boxes[:, 1:2] + i * (boxes[:, 3:4] - boxes[:, 1:2]) / 6
    grid = torch.stack([(2 * xs[:, None, :] - 1).expand(40, 7, 7), (2 * ys[:, :, None] - 1).expand(40, 7, 7)], -1)
    ref = torch.cat([F.grid_sample(img[ind[j]][None], grid[j][None], align_corners=True) for j in range(40)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_crop_and_resize_extrapolates_zero_outside():
    img = torch.ones(1, 1, 8, 8)
    out = crop_and_resize(img, torch.tensor([[-0.5, 0.0, 0.5, 1.0]]), torch.tensor([0]), 3)
    # rows: in_y = -3.5 (outside -> 0), 0 (inside -> 1), 3.5 (inside -> 1)
    assert out[0, 0, :, 0].tolist() == [0.0, 1.0, 1.0]


def test_nms_matches_onnxruntime_with_plus_one_shift():
    import onnxruntime as ort
    from onnx import TensorProto, helper

    g = torch.Generator().manual_seed(1)
    k = 300
    yx = torch.randint(0, 200, (k, 2), generator=g).float()
    hw = torch.randint(0, 60, (k, 2), generator=g).float()
    boxes = torch.cat([yx, yx + hw], 1)  # integer pixel boxes, some zero-size
    scores = torch.rand(k, generator=g)
    scores[10:20] = scores[0]  # ties
    for thr in (0.3, 0.5, 0.7):
        ours = nms(boxes, scores, thr).numpy()
        node = helper.make_node("NonMaxSuppression", ["b", "s", "m", "t"], ["sel"])
        graph = helper.make_graph([node], "nms", [
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, k, 4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, k])],
            [helper.make_tensor_value_info("sel", TensorProto.INT64, None)],
            initializer=[helper.make_tensor("m", TensorProto.INT64, [1], [k]),
                         helper.make_tensor("t", TensorProto.FLOAT, [1], [thr])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        shifted = boxes.clone()
        shifted[:, 2:] += 1  # +1 convention: areas (x2-x1+1)(y2-y1+1)
        sel = sess.run(None, {"b": shifted[None].numpy(), "s": scores[None, None].numpy()})[0][:, 2]
        np.testing.assert_array_equal(ours, sel)


def test_nms_suppresses_strictly_greater_and_keeps_equal():
    # two 10x10 boxes (+1 -> 11x11 = 121) overlapping in 11x? rows to get IoU exactly 0.5? use IoU = 1/3
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 5.5, 10.0, 15.5]])  # inter 11*5.5=60.5, union 181.5 -> 1/3
    s = torch.tensor([0.9, 0.8])
    iou = float(box_iou_plus1(b[:1], b[1:]))
    assert abs(iou - 1 / 3) < 1e-6
    assert nms(b, s, iou).tolist() == [0, 1]           # equal -> kept
    assert nms(b, s, iou - 1e-4).tolist() == [0]       # greater -> suppressed


def test_apply_box_deltas_hand_computed():
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # h 20, w 40, cy 20, cx 40
    d = torch.tensor([[0.1, -0.25, float(np.log(2.0)), 0.0]])
    out = apply_box_deltas(box, d)
    # cy 22, cx 30, h 40, w 40 -> (2, 10, 42, 50)
    torch.testing.assert_close(out, torch.tensor([[2.0, 10.0, 42.0, 50.0]]))


# ----------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def r101_original_file(tmp_path_factory):
    torch.manual_seed(0)
    m = build_model("coco")
    path = str(tmp_path_factory.mktemp("ckpt") / "mask_rcnn_random.pth")
    save_checkpoint(path, m, original_format=True)
    return m, path


def test_original_layout_round_trip(r101_original_file):
    m, path = r101_original_file
    sd, extra = read_checkpoint(path)
    assert len(sd) == 690 and extra == {}
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    assert sum(v.numel() for k, v in sd.items() if "running" not in k) == 64047096
    m2 = build_model("coco")
    load_weights(m2, path)
    for k, v in m.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, m2.state_dict()[k]), k


def test_renamed_key_and_wrong_shape_give_clear_errors(r101_original_file, tmp_path):
    _, path = r101_original_file
    sd = torch.load(path, weights_only=True)
    renamed = dict(sd)
    renamed["mask.conv5.weightX"] = renamed.pop("mask.conv5.weight")
    p1 = tmp_path / "renamed.pth"
    torch.save(renamed, p1)
    m = build_model("coco")
    with pytest.raises(UserError) as e:
        load_weights(m, str(p1))
    assert "missing keys: mask.conv5.weight" in str(e.value) and "unexpected keys: mask.conv5.weightX" in str(e.value)
    wrong = dict(sd)
    wrong["classifier.linear_class.weight"] = torch.zeros(9, 1024)
    p2 = tmp_path / "wrong.pth"
    torch.save(wrong, p2)
    with pytest.raises(UserError) as e:
        load_weights(m, str(p2))
    assert "classifier.linear_class.weight file (9, 1024) vs model (81, 1024)" in str(e.value)
    assert "9 classes" in str(e.value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mrcnn_pwned_marker",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = "/tmp/mrcnn_pwned_marker"
    if os.path.exists(marker):
        os.unlink(marker)
    p = tmp_path / "evil.pth"
    with open(p, "wb") as f:
        pickle.dump({"fpn.C1.0.weight": _Evil()}, f)
    with pytest.raises(UserError, match="refusing to load"):
        read_checkpoint(str(p))
    assert not os.path.exists(marker)


def test_missing_weights_file():
    with pytest.raises(UserError, match="not found"):
        read_checkpoint("/nonexistent/w.pth")


def test_our_checkpoint_and_imagenet_partial_load(tmp_path):
    torch.manual_seed(1)
    m = build_model("tiny")
    p = tmp_path / "ours.pth"
    save_checkpoint(str(p), m, m.config, epoch=3)
    m2 = build_model("tiny")
    extra = load_weights(m2, str(p))
    assert extra["epoch"] == 3 and extra["config"]["NAME"] == "tiny"
    backbone = {k: v for k, v in m.state_dict().items() if k.startswith("fpn.C")}
    backbone["fpn.C9.bogus"] = torch.zeros(1)
    pb = tmp_path / "imagenet.pth"
    torch.save(backbone, pb)
    m3 = build_model("tiny")
    report = load_imagenet_weights(m3, str(pb))
    assert report["loaded"] == len(backbone) - 1 and report["unknown"] == ["fpn.C9.bogus"]
    assert torch.equal(m3.state_dict()["fpn.C2.0.conv1.weight"], m.state_dict()["fpn.C2.0.conv1.weight"])


def test_config_validation_messages():
    with pytest.raises(UserError, match="multiple of 64"):
        preset("coco").replace(IMAGE_MAX_DIM=1000)
    with pytest.raises(UserError, match="CLASS_NAMES"):
        preset("coco").replace(NUM_CLASSES=9)
    with pytest.raises(UserError, match="unknown config"):
        preset("nope")


# ----------------------------------------------------------------- inference behaviour
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model("tiny").eval()


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (100, 150, 3), dtype=np.uint8), rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)]


def test_batch_of_two_equals_each_alone(tiny_model):
    imgs = _images()
    both = tiny_model.detect(imgs)
    for i in range(2):
        alone = tiny_model.detect([imgs[i]])[0]
        assert len(alone["class_ids"]) > 0
        np.testing.assert_array_equal(alone["rois"], both[i]["rois"])
        np.testing.assert_array_equal(alone["class_ids"], both[i]["class_ids"])
        np.testing.assert_allclose(alone["scores"], both[i]["scores"], atol=1e-5)
        np.testing.assert_array_equal(alone["masks"], both[i]["masks"])


def test_zero_detections_return_empty_arrays(tiny_model):
    m = build_model("tiny").eval()
    m.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        m.classifier.linear_class.bias[0] = 100.0  # everything is background
    r = m.detect(_images())
    for res, im in zip(r, _images()):
        assert res["rois"].shape == (0, 4) and res["rois"].dtype == np.int32
        assert res["class_ids"].shape == (0,) and res["scores"].shape == (0,)
        assert res["masks"].shape == (im.shape[0], im.shape[1], 0)


def test_intermediates_are_consistent(tiny_model):
    r = tiny_model.detect(_images()[:1], return_intermediates=True)[0]
    it = r["intermediates"]
    cfg = tiny_model.config
    s = cfg.IMAGE_MAX_DIM
    assert it["P2"].shape[1:] == (s // 4, s // 4) and it["P6"].shape[1:] == (s // 64, s // 64)
    assert it["rpn_probs"].shape == (cfg.NUM_ANCHORS, 2)
    # every proposal is its anchor decoded with the RPN deltas and clipped
    idx = torch.from_numpy(it["roi_anchor_index"])
    anchors = tiny_model.anchors[idx]
    d = torch.from_numpy(it["rpn_deltas"])[idx] * torch.tensor(cfg.RPN_BBOX_STD_DEV)
    dec = clip_boxes(apply_box_deltas(anchors, d), torch.tensor([0.0, 0, s, s]))
    torch.testing.assert_close(torch.from_numpy(it["rois"]) * s, dec, atol=1e-3, rtol=1e-5)
    # proposals come in descending score order
    sc = it["rpn_probs"][it["roi_anchor_index"], 1]
    assert np.all(np.diff(sc) <= 0)
    dets = it["detections"]
    assert dets.shape[1] == 6 and np.all(np.diff(dets[:, 5]) <= 0)
    assert it["masks"].shape == (dets.shape[0], 28, 28)


def test_unmold_mask_byte_scaling():
    # a mask whose values all lie in [0.2, 0.3]: thresholded relative to its own range
    m = np.full((28, 28), 0.2, np.float32)
    m[:, 14:] = 0.3
    full = unmold_mask(m, (0, 0, 28, 28), (28, 28))
    assert full[:, :13].sum() == 0 and full[:, 15:].all()
    assert unmold_mask(np.full((28, 28), 0.9, np.float32), (0, 0, 28, 28), (28, 28)).sum() == 0  # constant -> empty
    np.testing.assert_array_equal(bytescale(np.array([0.0, 0.5, 1.0], np.float32)), [0, 128, 255])


def test_image_conversions(tmp_path):
    from PIL import Image

    gray = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    g16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(g16).save(tmp_path / "d.png")
    assert load_image(str(tmp_path / "g.png")).shape == (16, 16, 3)
    assert load_image(str(tmp_path / "a.png"))[0, 0].tolist() == [255, 0, 0]
    d = load_image(str(tmp_path / "d.png"))
    assert d.dtype == np.uint8 and d[7, 7, 0] == round(63000 / 257)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read image"):
        load_image(str(tmp_path / "bad.jpg"))


@pytest.mark.slow
def test_r101_real_image_runs_and_random_model_finds_nothing(seed_images):
    """Full-size R-101 COCO model at 1024 on a real photo: random weights give no
    detection above 0.7, and the result has the right empty shapes."""
    torch.manual_seed(0)
    m = build_model("coco").eval()
    img = load_image(seed_images[0])
    r = m.detect([img], return_intermediates=True)[0]
    assert r["rois"].shape == (0, 4) and r["masks"].shape == img.shape[:2] + (0,)
    it = r["intermediates"]
    assert it["rpn_probs"].shape == (261888, 2)
    assert 0 < it["roi_count"] <= 1000 and it["rois"].shape == (it["roi_count"], 4)
    assert it["class_probs"].shape == (1000, 81) and it["class_deltas"].shape == (1000, 81, 4)

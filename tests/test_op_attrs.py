"""The op contract's attributes from a config (``OpDef.from_config`` through
``opdefs.attrs_from_config``) and the order every implementation takes them in
(``opdefs.attr_args``), against values written out by hand."""
import pytest

from mrcnn_trt.config import Config
from mrcnn_trt.plugins import opdefs

CFG = Config(NUM_CLASSES=5, CLASS_NAMES=("BG", "a", "b", "c", "d"), IMAGE_MAX_DIM=256, IMAGE_MIN_DIM=256,
             PRE_NMS_LIMIT=500, POST_NMS_ROIS_TRAINING=300, POST_NMS_ROIS_INFERENCE=200, RPN_NMS_THRESHOLD=0.6,
             RPN_BBOX_STD_DEV=(0.1, 0.1, 0.25, 0.25),
             POOL_SIZE=7, MASK_POOL_SIZE=14, DETECTION_MAX_INSTANCES=50, DETECTION_MIN_CONFIDENCE=0.5,
             DETECTION_NMS_THRESHOLD=0.35)


@pytest.mark.parametrize("op, kw, args", [
    ("PyramidROIAlign", {}, [7, 256, 224.0, 4]),
    ("PyramidROIAlign", {"pooled_size": 14}, [14, 256, 224.0, 4]),
    ("ProposalLayer", {}, [500, 200, 0.6, [0.1, 0.1, 0.25, 0.25], 256]),
    ("ProposalLayer", {"training": True}, [500, 300, 0.6, [0.1, 0.1, 0.25, 0.25], 256]),
    ("DetectionLayer", {}, [5, 0.5, 0.35, 50, [0.1, 0.1, 0.25, 0.25], 256]),
])
def test_attributes_from_a_config_in_the_contract_order(op, kw, args):
    attrs = opdefs.attrs_from_config(CFG, op, **kw)
    assert list(attrs) == list(opdefs.op_def(op).attr_names)
    assert opdefs.attr_args(op, attrs) == args   # the config's values themselves: exact


def test_every_contract_op_says_how_a_config_sets_it():
    assert all(d.from_config is not None for d in opdefs.OP_DEFS.values())
    with pytest.raises(ValueError, match="unknown op 'NoSuchOp'"):
        opdefs.attrs_from_config(CFG, "NoSuchOp")

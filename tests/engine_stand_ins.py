"""Stand-ins shared by the engine-check tests (tests/test_engine_checks_*.py)."""
import json

from mrcnn_trt.fileio import sha256_file


def stand_in_model(tmp_path, **over):
    """A tiny real ONNX graph (``model.onnx`` in ``tmp_path``) and its sidecar, fields
    overridden by ``over``: what mrcnn-build-engine checks before it looks for TensorRT.
    Returns ``(path, sidecar)``."""
    import onnx
    from onnx import TensorProto, helper

    onnx_path = tmp_path / "model.onnx"
    # a real (tiny) ONNX graph: mrcnn-build-engine loads the file before it looks for TensorRT
    g = helper.make_graph([helper.make_node("Relu", ["images"], ["detections"])], "stand-in",
                          [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 256, 256])],
                          [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 3, 256, 256])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_path))
    side = {"onnx_sha256": sha256_file(onnx_path), "flavor": "trt", "image_size": 256, "batch": 1,
            "num_classes": 4, "class_names": ["BG", "a", "b", "c"], "mean_pixel": [123.7, 116.8, 103.9],
            "opset": 17, "op_versions": {"mrcnn": 1}, "config": {"IMAGE_MIN_DIM": 256}}
    side.update(over)
    (tmp_path / "model.onnx.json").write_text(json.dumps(side))
    return str(onnx_path), side

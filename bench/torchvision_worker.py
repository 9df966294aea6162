"""torchvision's Mask R-CNN R-50-FPN for bench/bench_compare.py, run with the
python of its own venv (torch 2.14.1 + torchvision 0.29.1; this project's venv
cannot import torchvision). It imports nothing of this project.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.

    {"cmd": "load", "threads": 2, "size": 1024, "image": "img.npy", "molded": "molded.npy"}
    {"cmd": "run", "input": "molded" | "native"}   -> {"ms": ..., "dets": N}
    {"cmd": "flops", "input": "molded"}            -> {"gflop": ...}   (convolutions + matmuls)
    {"cmd": "export", "path": "tv.onnx"}           -> {"path": ..., "seconds": ...}
    {"cmd": "quit"}

``molded``: the same SxS padded image our models get (S = ``size``; the model
keeps SxS: min_size = max_size = S); ``native``: the original photo with
torchvision's own resize (short side to 3S/4, long side <= S, e.g. 500x375 ->
1024x768 for S = 1024). Random weights, every box kept (box_score_thresh 0), up to 100
detections per image like ours; timing is the model call (its transform,
network and mask pasting included).
"""
import json
import sys
import time
import warnings


def main():
    warnings.simplefilter("ignore")   # the legacy exporter's and torchvision's deprecation noise
    import numpy as np
    import torch
    import torchvision

    models = {}
    inputs = {}

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "load":
                torch.set_num_threads(int(req["threads"]))
                torch.manual_seed(0)
                size = int(req["size"])
                common = dict(weights=None, weights_backbone=None, num_classes=91, box_score_thresh=0.0,
                              box_detections_per_img=100)
                models["molded"] = torchvision.models.detection.maskrcnn_resnet50_fpn(
                    min_size=size, max_size=size, **common).eval()
                models["native"] = torchvision.models.detection.maskrcnn_resnet50_fpn(
                    min_size=size * 3 // 4, max_size=size, **common).eval()
                models["native"].load_state_dict(models["molded"].state_dict())
                for k in ("molded", "image"):
                    a = np.load(req[k])                         # HxWx3 uint8 RGB
                    inputs["molded" if k == "molded" else "native"] = (
                        torch.from_numpy(a).permute(2, 0, 1).float().div(255.0).contiguous())
                reply({"torch": torch.__version__, "torchvision": torchvision.__version__})
            elif cmd == "run":
                x = inputs[req["input"]]
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    out = models[req["input"]]([x])[0]
                    ms = (time.perf_counter() - t0) * 1e3
                reply({"ms": ms, "dets": int(out["boxes"].shape[0]),
                       "size": list(models[req["input"]].transform(
                           [x])[0].tensors.shape[-2:])})
            elif cmd == "flops":
                from torch.utils.flop_counter import FlopCounterMode

                with torch.inference_mode(), FlopCounterMode(display=False) as fc:
                    models[req["input"]]([inputs[req["input"]]])
                reply({"gflop": fc.get_total_flops() / 1e9})
            elif cmd == "export":
                t0 = time.perf_counter()
                x = inputs["molded"]
                torch.onnx.export(models["molded"], ([x],), req["path"], opset_version=17, dynamo=False,
                                  input_names=["image"], output_names=["boxes", "labels", "scores", "masks"])
                reply({"path": req["path"], "seconds": time.perf_counter() - t0})
            elif cmd == "quit":
                reply({"bye": True})
                return 0
            else:
                reply({"error": f"unknown command {cmd}"})
        except Exception as e:  # noqa: BLE001 - reported to the caller
            reply({"error": f"{type(e).__name__}: {e}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

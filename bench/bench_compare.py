"""Side-by-side CPU benchmark: our Mask R-CNN (PyTorch eager, ONNX Runtime with
our ops, ONNX Runtime standard ops, INT8) against torchvision's Mask R-CNN
R-50-FPN (eager and ONNX Runtime) on the same image, with the same number of
detections, in interleaved rounds; medians, ratios, and each row's fraction
of the measured convolution ceiling of this CPU.

    python bench/bench_compare.py                    # R-101 and R-50 at 1024 + torchvision, 5 rounds
    python bench/bench_compare.py --small            # the shipped model at 256, 1 round (seconds)
    python bench/bench_compare.py --torchvision off  # ours only

torchvision cannot be imported beside this project's CPU torch 2.13, so its
models run in their own venv, ``.cache/torchvision-venv`` (``pip install
torch==2.14.1 torchvision==0.29.1`` + onnx: a CUDA build, about 5.5 GB, that runs on
the CPU). The full run builds it once (``--torchvision build``, the default
there) and reuses it afterwards; ``--small`` only uses it when it exists.
The torchvision rows talk to ``bench/torchvision_worker.py`` running in that
venv; its ONNX export runs in our ONNX Runtime.

torchvision runs at the size of the first of our models (1024 px; 256 with
--small). What is timed: the model call on one image (ours: the molded 1024x1024 image
and its window -> detections + 28x28 masks; torchvision: its own
normalize/resize, network and mask pasting), after one warm-up, once per row
per round, rows interleaved so that load on a shared machine hits them alike.
Random weights; ours sharpened (decisive class scores) with
DETECTION_MIN_CONFIDENCE 0, torchvision with box_score_thresh 0: both return
100 detections (the ``dets`` column), so both heads do the same work.

FLOPs: convolutions + matrix products of one call, counted by
``torch.utils.flop_counter`` on the PyTorch model (2 per multiply-add; the
custom ops, NMS and pasting are not counted). The conv ceiling: the GFLOP/s of
one large 3x3 convolution in ONNX Runtime with the same threads (best of 5 runs,
timed in every round; the median over the rounds).
``% ceiling`` = GFLOP / seconds / ceiling.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from benchlib import load_avg, random_coco_model

from mrcnn_trt.data.synthetic import SyntheticShapesDataset
from mrcnn_trt.model.backends import make_ops
from mrcnn_trt.model.checkpoint import shipped_model_path
from mrcnn_trt.model.loading import load_model
from mrcnn_trt.model.molding import load_image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SEED_IMAGES = os.path.join(REPO, "..", "shared", "data", "seed-images")
TV_VENV = os.path.join(REPO, ".cache", "torchvision-venv")
TV_REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "onnx==1.23.2"]   # onnx: its ONNX export


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ torchvision venv
def torchvision_python(mode: str):
    """The python of the torchvision venv, building it when ``mode == "build"``;
    (None, reason) when it is absent (or ``mode == "off"``)."""
    py = os.path.join(TV_VENV, "bin", "python")
    marker = os.path.join(TV_VENV, "mrcnn-bench.json")
    if mode == "off":
        return None, "--torchvision off"
    if os.path.isfile(marker) and os.path.isfile(py):
        with open(marker) as f:
            if json.load(f).get("requirements") == TV_REQUIREMENTS:
                log(f"# reusing the torchvision venv {TV_VENV} ({' '.join(TV_REQUIREMENTS)})")
                return py, None
    if mode != "build":
        return None, f"no torchvision venv at {TV_VENV} (python bench/bench_compare.py builds it)"
    log(f"# building the torchvision venv {TV_VENV}: pip install {' '.join(TV_REQUIREMENTS)} "
        f"(about 5.5 GB, once; reused afterwards)")
    subprocess.run([sys.executable, "-m", "venv", TV_VENV], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", *TV_REQUIREMENTS], check=True)
    with open(marker, "w") as f:
        json.dump({"requirements": TV_REQUIREMENTS}, f)
    return py, None


class TorchvisionWorker:
    def __init__(self, python: str, threads: int, size: int, image, molded, work: str):
        paths = {k: os.path.join(work, f"tv_{k}.npy") for k in ("image", "molded")}
        np.save(paths["image"], image)
        np.save(paths["molded"], molded)
        self.p = subprocess.Popen([python, os.path.join(HERE, "torchvision_worker.py")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.versions = self.ask({"cmd": "load", "threads": threads, "size": size, **paths})

    def ask(self, req: dict) -> dict:
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the torchvision worker exited")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"torchvision worker: {out['error']}")
        return out

    def close(self):
        try:
            self.ask({"cmd": "quit"})
        except Exception:  # noqa: BLE001
            pass
        self.p.wait(timeout=30)


# ------------------------------------------------------------------ ours
def test_image():
    """The first seed photo (500x375 in ../shared), else a synthetic shapes image."""
    if os.path.isdir(SEED_IMAGES):
        files = sorted(f for f in os.listdir(SEED_IMAGES) if f.endswith(".jpg"))
        return load_image(os.path.join(SEED_IMAGES, files[0])), files[0]

    return SyntheticShapesDataset(1, seed=99, split="val").load_image(0), "synthetic shapes image"


# Seeds of the random weights whose heads give 100 detections on the first seed photo
# (seed 0 gives R-101 only 13 there), so that every row does the full work.
MODEL_SEEDS = {"r101": 1, "r50": 0}


def build_model(name: str):
    if name == "shapes":
        m, cfg, _ = load_model(shipped_model_path())
        m.set_config(cfg.replace(DETECTION_MIN_CONFIDENCE=0.0))
        return m.eval()
    return random_coco_model("resnet101" if name == "r101" else "resnet50", min_confidence=0.0,
                             seed=MODEL_SEEDS[name])


def eager_backend():
    """The fastest PyTorch ops backend available: 'native' (torch.ops.mrcnn) when the
    project has it, else 'cpu' (the same C++ kernels through pybind11)."""
    try:
        make_ops(None, "native")
    except ValueError:
        return "cpu"
    except Exception:  # noqa: BLE001 - it exists (failed only on the missing config)
        return "native"
    return "native"


def count_gflop(model, x, w) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.from_numpy(x), torch.from_numpy(w))
    return fc.get_total_flops() / 1e9


class ConvCeiling:
    """GFLOP/s of one 3x3 convolution, 256 -> 256 channels on [1, 256, size, size], in
    ONNX Runtime: what this CPU's convolutions reach. Timed once per round, interleaved
    with the rows (load on a shared machine moves it as much as them): ``measure()``
    gives the best of ``repeat`` runs, the table uses the median over the rounds."""

    def __init__(self, threads: int, size: int):
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        c = 256
        rng = np.random.default_rng(0)
        wt = numpy_helper.from_array((rng.standard_normal((c, c, 3, 3)) * 0.05).astype(np.float32), "w")
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, size, size])], [wt])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.feed = {"x": rng.standard_normal((1, c, size, size)).astype(np.float32)}
        self.flop = 2.0 * c * c * 9 * size * size
        self.session.run(None, self.feed)
        self.values = []

    def measure(self, repeat: int = 5) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self.session.run(None, self.feed)
            times.append(time.perf_counter() - t0)
        self.values.append(self.flop / min(times) / 1e9)
        return self.values[-1]

    def median(self) -> float:
        return statistics.median(self.values)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="the shipped model at 256 px, 1 round (a quick check)")
    ap.add_argument("--models", help="ours: r101,r50 (default) or shapes (--small)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --small: 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-images", type=int, default=4, help="images calibrating the INT8 rows (default 4)")
    ap.add_argument("--torchvision", choices=["build", "auto", "off"],
                    help="build (default): build or reuse the torchvision venv; auto (--small's default): only "
                         "if it exists; off")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--json", help="write every measurement here")
    args = ap.parse_args(argv)
    os.environ.setdefault("MRCNN_PROGRESS", "0")
    rounds = args.rounds or (1 if args.small else 5)
    names = (args.models or ("shapes" if args.small else "r101,r50")).split(",")
    tv_mode = args.torchvision or ("auto" if args.small else "build")

    import torch

    torch.set_num_threads(args.threads)
    from mrcnn_trt.calib.qdq import quantize_model
    from mrcnn_trt.export.exporter import export_onnx
    from mrcnn_trt.model.molding import mold_batch
    from mrcnn_trt.runtime.runners import OnnxRunner
    from mrcnn_trt.runtime.torch_runner import TorchRunner

    work = args.work or tempfile.mkdtemp(prefix="bench-compare-")
    os.makedirs(work, exist_ok=True)
    loads = [load_avg()]
    log(f"# load average {loads[0]}; {args.threads} threads; work folder {work}")
    image, image_name = test_image()
    probe = ConvCeiling(args.threads, 64 if args.small else 128)
    log(f"# conv ceiling (ONNX Runtime, one 3x3 conv 256->256): {probe.measure():.1f} GFLOP/s before the rounds")

    rows = []   # dicts: model, backend, input, run (callable -> (ms, dets)), gflop
    calib_dir = os.path.join(work, "calib")
    if os.path.isdir(SEED_IMAGES):
        calib_src = SEED_IMAGES
    else:
        from mrcnn_trt.data.synthetic import write_dataset

        write_dataset(calib_dir, fmt="coco", num_images=args.calib_images, seed=5, split="val",
                      show_progress=False)
        calib_src = calib_dir
    molded = None   # the first model's molded image, also fed to torchvision
    for name in names:
        model = build_model(name)
        cfg = model.config
        x, w, _ = mold_batch([image], cfg)
        if molded is None:
            molded = x[0].transpose(1, 2, 0).astype(np.uint8)
        label = {"r101": "ours R-101-FPN", "r50": "ours R-50-FPN", "shapes": "ours shapes R-14"}[name]
        size = f"{cfg.IMAGE_MAX_DIM}x{cfg.IMAGE_MAX_DIM}"
        backend = eager_backend()
        model.set_ops_backend(backend)
        gflop = count_gflop(model, x, w)
        log(f"== {label}: {gflop:.0f} GFLOP (conv + matmul)")
        runners = [(f"PyTorch eager ({backend} ops)", TorchRunner.from_model(model))]
        paths = {}
        for flavor, mask_head in (("trt", "valid"), ("standard", "all")):
            paths[flavor] = os.path.join(work, f"{name}_{flavor}.onnx")
            t0 = time.perf_counter()
            export_onnx(model, paths[flavor], flavor=flavor, mask_head=mask_head)
            log(f"   export {flavor}: {time.perf_counter() - t0:.0f} s")
        runners.append(("ONNX Runtime, our ops", OnnxRunner(paths["trt"], threads=args.threads)))
        runners.append(("ONNX Runtime, standard ops", OnnxRunner(paths["standard"], threads=args.threads)))
        int8 = os.path.join(work, f"{name}.cpu.int8.onnx")
        t0 = time.perf_counter()
        side = quantize_model(paths["trt"], int8, calib_src, count=args.calib_images, target="cpu",
                              threads=args.threads)
        log(f"   INT8 calibration: {side['quantization']['calib_count']} images, {time.perf_counter() - t0:.0f} s")
        runners.append(("ONNX Runtime INT8 (cpu form)", OnnxRunner(int8, threads=args.threads)))

        def timer(r, x=x, w=w):
            def run():
                t0 = time.perf_counter()
                out = r(x, w)
                return (time.perf_counter() - t0) * 1e3, int(out["count"][0])
            return run

        for backend_label, r in runners:
            rows.append({"model": label, "backend": backend_label, "input": size, "run": timer(r), "gflop": gflop})

    tv = None
    tv_python, tv_reason = torchvision_python(tv_mode)
    if tv_python:
        side = molded.shape[0]
        tv = TorchvisionWorker(tv_python, args.threads, side, image, molded, work)
        log(f"# torchvision worker: torch {tv.versions['torch']}, torchvision {tv.versions['torchvision']}")
        tv_flops = {k: tv.ask({"cmd": "flops", "input": k})["gflop"] for k in ("molded", "native")}

        def tv_run(which):
            def run():
                r = tv.ask({"cmd": "run", "input": which})
                return r["ms"], r["dets"]
            return run

        native = tv.ask({"cmd": "run", "input": "native"})["size"]
        rows.append({"model": "torchvision R-50-FPN", "backend": "PyTorch eager", "input": f"{side}x{side}",
                     "run": tv_run("molded"), "gflop": tv_flops["molded"]})
        rows.append({"model": "torchvision R-50-FPN", "backend": "PyTorch eager (native resize)",
                     "input": f"{native[1]}x{native[0]}", "run": tv_run("native"), "gflop": tv_flops["native"]})
        tv_onnx = os.path.join(work, "torchvision_maskrcnn.onnx")
        try:
            tv.ask({"cmd": "export", "path": tv_onnx})
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.log_severity_level = 3   # its legacy export declares 1 detection; ORT warns about 100 each run
            sess = ort.InferenceSession(tv_onnx, so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: np.ascontiguousarray(
                molded.transpose(2, 0, 1).astype(np.float32) / 255.0)}

            def tv_ort():
                t0 = time.perf_counter()
                out = sess.run(None, feed)
                return (time.perf_counter() - t0) * 1e3, int(out[0].shape[0])

            rows.append({"model": "torchvision R-50-FPN", "backend": "ONNX Runtime", "input": f"{side}x{side}",
                         "run": tv_ort, "gflop": tv_flops["molded"]})
        except Exception as e:  # noqa: BLE001 - the table says why the row is missing
            log(f"# torchvision ONNX export/run failed, row left out: {e}")
    else:
        log(f"# torchvision rows skipped: {tv_reason}")

    for r in rows:   # warm-up
        r["ms"], r["dets"] = [], r["run"]()[1]
    for k in range(rounds):
        for r in rows:
            ms, dets = r["run"]()
            r["ms"].append(ms)
        log(f"# round {k + 1}/{rounds} done (conv ceiling {probe.measure():.1f} GFLOP/s, load {load_avg()})")
    ceiling = probe.median()
    loads.append(load_avg())
    if tv is not None:
        tv.close()

    ref = {}
    for r in rows:
        r["median_s"] = statistics.median(r["ms"]) / 1e3
        if r["backend"] == "ONNX Runtime, our ops":
            ref[r["model"]] = r["median_s"]
    base = ref.get("ours R-101-FPN") or next(iter(ref.values()))
    lines = [f"| model | backend | input | dets | median s | vs ORT ours{' R-101' if 'ours R-101-FPN' in ref else ''} "
             f"| GFLOP | GFLOP/s | % conv ceiling |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gfs = r["gflop"] / r["median_s"]
        lines.append(f"| {r['model']} | {r['backend']} | {r['input']} | {r['dets']} | {r['median_s']:.3f} | "
                     f"{base / r['median_s']:.2f}x | {r['gflop']:.0f} | {gfs:.0f} | {100 * gfs / ceiling:.0f} % |")
    print(f"Image: {image_name}; {args.threads} threads; median of {rounds} interleaved round(s); "
          f"conv ceiling {ceiling:.0f} GFLOP/s; load average {loads[0]} (start) / {loads[1]} (end)")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceiling_gflops": ceiling, "ceiling_per_round": probe.values, "load": loads, "rounds": rounds,
                       "threads": args.threads, "image": image_name,
                       "rows": [{k: v for k, v in r.items() if k != "run"} for r in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

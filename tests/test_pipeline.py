"""The pipelined batch loop (runtime/pipeline.py) and the pipelined evaluation:
same order, same results and metrics as the serial loop, errors and Ctrl-C,
bounded and flat memory."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from mrcnn_trt.runtime.pipeline import prefetch, run_pipelined


class Counting:
    """Items that count how many of them are alive at once (created, not yet finished)."""

    def __init__(self):
        self.alive = 0
        self.peak = 0
        self.lock = threading.Lock()

    def make(self, n, delay=0.0):
        for i in range(n):
            with self.lock:
                self.alive += 1
                self.peak = max(self.peak, self.alive)
            time.sleep(delay)
            yield i

    def done(self):
        with self.lock:
            self.alive -= 1


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_order_threads_and_bounded_items(depth):
    c = Counting()
    seen, threads = [], set()

    def compute(i):
        threads.add(("compute", threading.current_thread().name))
        time.sleep(0.002)
        return i * i

    def finish(i, r):
        threads.add(("finish", threading.current_thread().name))
        time.sleep(0.004 if i % 3 else 0.0)
        seen.append((i, r))
        c.done()

    run_pipelined(c.make(40), compute, finish, depth=depth)
    assert seen == [(i, i * i) for i in range(40)]
    main = threading.current_thread().name
    if depth == 0:
        assert threads == {("compute", main), ("finish", main)} and c.peak == 1
    else:
        assert ("compute", main) in threads and ("finish", "mrcnn-finish") in threads
        assert 2 <= c.peak <= 2 * depth + 3


@pytest.mark.parametrize("stage", ["source", "compute", "finish"])
def test_first_error_of_any_stage_is_raised_and_everything_stops(stage):
    finished = []

    def source():
        for i in range(100):
            if stage == "source" and i == 5:
                raise OSError("unreadable image")
            yield i

    def compute(i):
        if stage == "compute" and i == 5:
            raise ValueError("network failed")
        return i

    def finish(i, r):
        if stage == "finish" and i == 5:
            raise RuntimeError("cannot write")
        finished.append(i)

    before = threading.active_count()
    with pytest.raises((OSError, ValueError, RuntimeError)) as e:
        run_pipelined(source(), compute, finish, depth=2)
    assert {"source": OSError, "compute": ValueError, "finish": RuntimeError}[stage] is e.type
    assert finished == list(range(5))   # everything before the failure, in order, nothing after
    assert threading.active_count() == before


def test_ctrl_c_finishes_what_was_computed():
    finished = []

    def compute(i):
        if i == 6:
            raise KeyboardInterrupt
        return i

    with pytest.raises(KeyboardInterrupt):
        run_pipelined(iter(range(50)), compute, lambda i, r: (time.sleep(0.01), finished.append(i)), depth=2)
    assert finished == list(range(6))


def test_prefetch_runs_ahead_and_stops_when_closed():
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    it = prefetch(source(), depth=3)
    assert next(it) == 0
    time.sleep(0.05)
    assert 2 <= len(produced) <= 5   # at most depth items wait in the queue (+1 being made)
    it.close()
    n = len(produced)
    time.sleep(0.05)
    assert len(produced) == n


# ---------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def shipped(tmp_path_factory, shipped_onnx):
    from mrcnn_trt.data.synthetic import write_dataset

    d = tmp_path_factory.mktemp("pipe")
    write_dataset(str(d / "coco"), fmt="coco", num_images=40, seed=91, split="val", show_progress=False)
    return shipped_onnx, str(d / "coco")


def test_pipelined_evaluation_equals_serial(shipped, tmp_path):
    """Same detections (COCO results, in order), same metrics, same pictures."""
    from mrcnn_trt.data import open_dataset
    from mrcnn_trt.eval.evaluate import evaluate
    from mrcnn_trt.eval.evaluators import COCOEvaluator
    from mrcnn_trt.runtime.runners import OnnxRunner

    onnx_path, coco = shipped
    ds = open_dataset(coco, "val")
    runner = OnnxRunner(onnx_path)
    out = {}
    for depth in (0, 2):
        ev = COCOEvaluator(ds, class_names=runner.config.CLASS_NAMES)
        m = evaluate(runner, ds, ev, limit=20, out_dir=str(tmp_path / str(depth)), save_vis=3,
                     pipeline=depth)
        out[depth] = (m, ev.results)
    (m0, r0), (m2, r2) = out[0], out[2]
    assert m0["num_images"] == m2["num_images"] == 20 and m2["pipeline"] == 2
    assert r0 == r2 and len(r0) > 20
    for k in ("bbox", "segm"):   # (json: NaN == NaN)
        assert json.dumps(m0[k], sort_keys=True) == json.dumps(m2[k], sort_keys=True)
    vis = [sorted(os.listdir(tmp_path / d / "vis")) for d in ("0", "2")]
    assert vis[0] == vis[1] and len(vis[0]) == 3
    for name in vis[0]:
        assert (tmp_path / "0" / "vis" / name).read_bytes() == (tmp_path / "2" / "vis" / name).read_bytes()
    for m in (m0, m2):   # the share of the wall time inside network calls: never above 1
        assert 0 < m["pipeline_efficiency"] <= 1 and m["throughput_ips"] > 0
        mean_ms = m["latency_per_image_ms"]["mean"]
        assert m["pipeline_efficiency"] == pytest.approx(m["throughput_ips"] * mean_ms / 1000, rel=0.02, abs=2e-3)


def test_pipeline_efficiency_uses_the_mean():
    """Hand-computed: 4 calls of 10, 10, 10 and 50 ms in 0.1 s -> 0.8 (the median, 10 ms, would give 0.4;
    with calls of 30, 30, 30, 10 ms in 0.1 s the median gave 1.2 > 1, the mean gives 1.0)."""
    from mrcnn_trt.eval.evaluate import pipeline_efficiency

    assert pipeline_efficiency([10, 10, 10, 50], 4, 0.1) == 0.8
    assert pipeline_efficiency([30, 30, 30, 10], 4, 0.1) == 1.0
    assert pipeline_efficiency([20, 20], 4, 0.1) == 0.4          # batches of 2: 20 ms per call, 10 per image
    assert pipeline_efficiency([], 0, 0.0) is None


def _peak_rss_mb(onnx_path, coco, limit):
    code = ("import json, resource, sys\n"
            "from mrcnn_trt.eval.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "print(json.dumps({'rc': rc, 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    out = str(os.path.join(os.path.dirname(onnx_path), f"eval{limit}"))
    r = subprocess.run([sys.executable, "-c", code, "--engine", onnx_path, "--dataset", "coco", "--data-root", coco,
                        "--out", out, "--limit", str(limit), "--threads", "1"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "MRCNN_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rc"] == 0
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["num_images"] == limit
    return res["peak_mb"]


def test_evaluation_memory_is_flat_in_the_number_of_images(shipped):
    onnx_path, coco = shipped
    small, large = _peak_rss_mb(onnx_path, coco, 8), _peak_rss_mb(onnx_path, coco, 40)
    print(f"peak RSS {small:.0f} MB (8 images), {large:.0f} MB (40 images)")
    assert large - small < 30, (small, large)   # 5x the images: the same memory (+ the evaluator's few KB/image)


def test_evaluation_runs_onnxruntime_without_spinning(shipped, tmp_path, monkeypatch):
    """mrcnn-eval opens ONNX Runtime with its threads not busy-waiting between ops (they
    would take the cores from the reading/scoring threads and from other processes),
    pipelined or not; OnnxRunner(spinning=True) still gives ONNX Runtime's default."""
    import dataclasses

    from mrcnn_trt.runtime import registry
    from mrcnn_trt.runtime.runners import OnnxRunner

    from mrcnn_trt.eval import cli

    onnx_path, coco = shipped
    key = "session.intra_op.allow_spinning"

    def spinning(runner):
        try:
            return runner.session.get_session_options().get_session_config_entry(key)
        except RuntimeError:   # not set: ONNX Runtime's default (spinning)
            return "default"

    assert spinning(registry.open_runner(onnx_path, pipelined=True)) == "0"
    assert spinning(registry.open_runner(onnx_path)) == "0"
    assert spinning(OnnxRunner(onnx_path, spinning=True)) == "default"
    seen = []
    entry = registry._RUNNERS["onnxruntime"]

    def recording(*a, **k):   # the registry's ONNX Runtime factory, recording what the command opened
        r = entry.open(*a, **k)
        seen.append(spinning(r))
        return r

    monkeypatch.setitem(registry._RUNNERS, "onnxruntime", dataclasses.replace(entry, factory=recording))
    for pipeline in ("2", "0"):
        assert cli.main(["--model", onnx_path, "--dataset", "coco", "--data-root", coco, "--limit", "2",
                         "--pipeline", pipeline, "-o", str(tmp_path / pipeline)]) == 0
    assert seen == ["0", "0"]

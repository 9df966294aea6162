"""Images/s with 1 process vs N ranks (torch.distributed, gloo on the CPU) for
``mrcnn-eval`` and ``mrcnn-train``, on the machine's own cores.

    python bench/bench_dist.py [--ranks 2] [--images 64] [--steps 40] [--repeat 2]

Evaluation: the shipped shapes model (PyTorch backend) on ``--images``
synthetic COCO-format images; training: the ``shapes`` preset from scratch
(all layers) on in-memory synthetic images, ``--steps`` optimizer steps of
global batch ``--ranks``. Three layouts, each run ``--repeat`` times,
interleaved, medians reported:

* ``1 rank x T threads`` (T = --ranks: the same cores as the job below),
* ``1 rank x 1 thread`` (what one rank of the job gets),
* ``N ranks x 1 thread`` (``torchrun --standalone --nproc_per_node N``).

Evaluation images/s is the job's end-to-end rate of ``metrics.json``
(``throughput_ips``: all images / the slowest rank's time, model loading and
warm-up excluded); training images/s is images / the epoch's wall time
(``losses.json``). The load average is printed: on a shared machine other work
inflates the times, so compare ratios within one run. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from benchlib import load_avg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(nproc: int, threads: int, module: str, args) -> None:
    env = dict(os.environ, MRCNN_PROGRESS="0", OMP_NUM_THREADS=str(threads))
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
              if nproc > 1 else [sys.executable, "-m"])
    res = subprocess.run([*launch, module, *args, "--threads", str(threads)], cwd=REPO, env=env,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{module} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def eval_ips(nproc: int, threads: int, data: str, out: str) -> float:
    _run(nproc, threads, "mrcnn_trt.eval", ["--dataset", "coco", "--data-root", data, "--out", out])
    with open(os.path.join(out, "metrics.json")) as f:
        return float(json.load(f)["throughput_ips"])


def train_ips(nproc: int, threads: int, steps: int, ranks: int, out: str) -> float:
    batch = ranks // nproc   # the same global batch in every layout
    _run(nproc, threads, "mrcnn_trt.train",
         ["--dataset", "shapes", "--synthetic-images", "200", "--weights", "none", "--layers", "all",
          "--epochs", "1", "--steps-per-epoch", str(steps), "--batch", str(batch), "--val-steps", "0",
          "--workers", "0", "--out", out, "--quiet"])
    with open(os.path.join(out, "losses.json")) as f:
        ep = json.load(f)["epochs"][-1]
    return steps * ranks / float(ep["time_s"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    from mrcnn_trt.data.synthetic import write_dataset

    n = args.ranks
    layouts = [(1, n), (1, 1), (n, 1)]
    res = {"eval": {}, "train": {}}
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        data = os.path.join(tmp, "coco")
        write_dataset(data, fmt="coco", num_images=args.images, seed=5, split="val")
        for rep in range(args.repeat):
            for nproc, threads in layouts:
                key = f"{nproc} rank(s) x {threads} thread(s)"
                out = os.path.join(tmp, f"out-{nproc}-{threads}-{rep}")
                res["eval"].setdefault(key, []).append(eval_ips(nproc, threads, data, out + "-eval"))
                res["train"].setdefault(key, []).append(train_ips(nproc, threads, args.steps, n, out + "-train"))
                print(f"repeat {rep + 1}: {key}: eval {res['eval'][key][-1]:.2f} img/s, "
                      f"train {res['train'][key][-1]:.2f} img/s (load {load_avg()})", file=sys.stderr, flush=True)
    summary = {
        "cpu_count": os.cpu_count(), "load_avg_end": load_avg(), "images": args.images, "train_steps": args.steps,
        "global_batch": n,
        **{kind: {k: {"median_ips": round(statistics.median(v), 3), "runs": [round(x, 3) for x in v]}
                  for k, v in d.items()} for kind, d in res.items()},
    }
    for kind in ("eval", "train"):
        d = summary[kind]
        job, one_same, one_single = (d[f"{n} rank(s) x 1 thread(s)"]["median_ips"], d[f"1 rank(s) x {n} thread(s)"]
                                     ["median_ips"], d["1 rank(s) x 1 thread(s)"]["median_ips"])
        summary[kind]["ratio_ranks_vs_threads"] = round(job / one_same, 3)
        summary[kind]["ratio_ranks_vs_one_rank"] = round(job / one_single, 3)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

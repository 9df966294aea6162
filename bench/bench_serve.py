"""Triton serving on CPU: throughput and latency of the ``mrcnn`` ensemble at concurrency 1, 4, 16.

    python bench/bench_serve.py [--models shapes,r101] [--concurrency 1,4,16] [--instances 1] [--threads 2]
    python bench/bench_serve.py --url 127.0.0.1:8000      # a server you started (loopback only)

For each model: export (shapes = the shipped model; r101 = R-101 at 1024 with random,
sharpened weights as in bench_e2e.py), ``mrcnn-triton repo`` (python form: ONNX Runtime +
custom ops), start tritonserver on free loopback ports, warm up, then for each concurrency C
send max(--min-requests, C x --rounds) requests from C client threads (one client each, one
JPEG per request) and report throughput (images/s over the wall time), p50/p90/p99 latency
of one request (ms), and the server's resident memory (server + Python-backend stubs).
The in-process pipeline (molding + ONNX Runtime + unmolding + JSON, same threads) is timed
too: "overhead" is the server's p50 at concurrency 1 over it. Request counts are bounded.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
from bench_e2e import build
from PIL import Image

from mrcnn_trt.export.exporter import export_onnx
from mrcnn_trt.runtime.results import result_to_json
from mrcnn_trt.runtime.runners import OnnxRunner, detect
from mrcnn_trt.serve.client import TritonClient

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def jpeg_bytes(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def export(name: str, folder: str) -> str:
    path = os.path.join(folder, f"{name}.onnx")
    if not os.path.isfile(path + ".json"):
        t0 = time.time()
        export_onnx(build(name), path, batch=1, flavor="trt")
        print(f"[{name}] exported in {time.time() - t0:.0f} s", file=sys.stderr)
    return path


def in_process_ms(onnx: str, image, threads: int, repeat: int) -> float:
    runner = OnnxRunner(onnx, threads=threads)
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        json.dumps(result_to_json(detect(runner, [image])[0], runner.config.CLASS_NAMES, "x"))
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def load(url: str, protocol: str, model: str, data: bytes, concurrency: int, requests: int):
    """``requests`` requests from ``concurrency`` threads -> (latencies ms, wall s, detections)."""
    lock, latencies, counter, found, errors = threading.Lock(), [], [0], [], []
    start = threading.Barrier(concurrency + 1)

    def worker():
        # long timeout: at concurrency 16 an R-101 request waits for 15 others on 2 cores
        with TritonClient(url, protocol=protocol, model=model, timeout_s=7200) as c:
            start.wait()
            while True:
                with lock:
                    if counter[0] >= requests or errors:
                        return
                    counter[0] += 1
                t0 = time.perf_counter()
                try:
                    doc = c.detect([data])[0]
                except Exception as e:  # noqa: BLE001 - reported below, ends the run
                    with lock:
                        errors.append(e)
                    return
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    latencies.append(dt)
                    found.append(len(doc["detections"]))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"request failed: {errors[0]}")
    return latencies, time.perf_counter() - t0, found


def bench_url(url, protocol, model, data, levels, rounds, min_requests, label):
    with TritonClient(url, protocol=protocol, model=model) as c:
        for _ in range(2):   # warm-up: first requests load lazily initialised state
            c.detect([data])
    rows = []
    for conc in levels:
        n = max(min_requests, conc * rounds)
        lat, wall, found = load(url, protocol, model, data, conc, n)
        rows.append({"model": label, "concurrency": conc, "requests": n, "throughput_ips": n / wall,
                     "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
                     "detections": statistics.median(found)})
        r = rows[-1]
        print(f"[{label}] c={conc:>2} n={n:>3}: {r['throughput_ips']:.2f} img/s, p50 {r['p50_ms']:.0f} ms, "
              f"p90 {r['p90_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms", file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shapes,r101")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=4, help="requests per client thread and level (default 4)")
    ap.add_argument("--min-requests", type=int, default=16, help="at least this many requests per level")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per network instance")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--protocol", choices=["http", "grpc"], default="http")
    ap.add_argument("--url", help="benchmark a running server (127.0.0.1 / localhost only) instead")
    ap.add_argument("--model", default="mrcnn", help="ensemble name with --url")
    ap.add_argument("--workdir", help="keep exports and repositories here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]
    from bench_e2e import test_image

    image = test_image()
    data = jpeg_bytes(image)
    rows = []
    if args.url:
        host = args.url.split("://")[-1].split(":")[0]
        if host not in ("127.0.0.1", "localhost"):
            raise SystemExit("bench_serve.py only talks to a server on this machine (127.0.0.1 / localhost)")
        rows = bench_url(args.url, args.protocol, args.model, data, levels, args.rounds, args.min_requests, args.url)
    else:
        from mrcnn_trt.serve.repository import RepoOptions, write_repository
        from mrcnn_trt.serve.server import TritonServer

        work = args.workdir or tempfile.mkdtemp(prefix="bench_serve_")
        os.makedirs(work, exist_ok=True)
        for name in args.models.split(","):
            onnx = export(name, work)
            single = in_process_ms(onnx, image, args.threads, repeat=5 if name == "shapes" else 3)
            repo = os.path.join(work, f"repo_{name}")
            write_repository(onnx, repo, RepoOptions(instances=args.instances, threads=args.threads,
                                                     max_batch=args.max_batch, force=True))
            with TritonServer(repo, http_port=0, grpc_port=0, metrics_port=0) as srv:
                idle = srv.memory_mb()
                url = srv.grpc_url if args.protocol == "grpc" else srv.http_url
                level_rows = bench_url(url, args.protocol, "mrcnn", data, levels, args.rounds, args.min_requests,
                                       name)
                busy = srv.memory_mb()
            for r in level_rows:
                r.update(in_process_ms=single, idle_memory_mb=idle["total_mb"], memory_mb=busy["total_mb"],
                         processes=busy["processes"])
            level_rows[0]["overhead"] = level_rows[0]["p50_ms"] / single
            rows += level_rows
    print(f"\nimage {image.shape[1]}x{image.shape[0]} JPEG ({len(data) / 1e3:.0f} kB), {args.protocol}, "
          f"{args.instances} instance(s) x {args.threads} ORT threads, max batch {args.max_batch}, "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| model | concurrency | requests | images/s | p50 ms | p90 ms | p99 ms | server memory |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mem = f"{r['memory_mb']:.0f} MB" if "memory_mb" in r else "-"
        print(f"| {r['model']} | {r['concurrency']} | {r['requests']} | {r['throughput_ips']:.2f} | "
              f"{r['p50_ms']:.0f} | {r['p90_ms']:.0f} | {r['p99_ms']:.0f} | {mem} |")
    for r in rows:
        if "overhead" in r:
            print(f"{r['model']}: in-process pipeline {r['in_process_ms']:.0f} ms/image; server p50 at "
                  f"concurrency 1 = {r['overhead']:.2f}x that; memory idle {r['idle_memory_mb']:.0f} MB, after "
                  f"load {r['memory_mb']:.0f} MB ({r['processes']} processes)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

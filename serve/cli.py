"""``mrcnn-triton``: serve an exported model on NVIDIA Triton Inference Server.

    mrcnn-triton repo model.onnx -o triton_repo --instances 2 --max-batch 8
    mrcnn-triton serve triton_repo --http-port 8000 --grpc-port 8001 --metrics-port 8002
    mrcnn-triton infer http://127.0.0.1:8000 photo.jpg photos/ -o results/

repo:  writes a model repository: ensemble "mrcnn" (encoded image bytes in, mrcnn-demo's
       per-image JSON out) = preprocess -> network -> postprocess. The network runs ONNX
       Runtime with the custom ops in the Python backend (.onnx, any CPU), Triton's
       onnxruntime backend (--backend onnxruntime) or a TensorRT plan (.plan, GPU servers).
serve: runs tritonserver on 127.0.0.1 with that repository until Ctrl-C.
infer: sends images over HTTP or gRPC and prints (or writes) the JSON of each.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Optional, Sequence

from ..cli import progress, run_main
from ..errors import UserError
from ..options import add_output, add_threads, nonnegative_int, port_number, positive_int


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-triton", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{repo,serve,infer}",
                         help="what to do (each has its own --help)")

    r = sub.add_parser("repo", help="write a Triton model repository from an exported model",
                       description="Write a Triton model repository (see serve/repository.py).")
    r.add_argument("model", metavar="MODEL", help="model.onnx (mrcnn-export) or model.plan (mrcnn-build-engine), "
                                                  "with its .json sidecar")
    add_output(r, required=True, what="folder", help="repository folder (created; other models in it are kept)")
    r.add_argument("--name", default="mrcnn", help="ensemble name; the other models are NAME_preprocess, "
                                                   "NAME_network, NAME_postprocess (default mrcnn)")
    r.add_argument("--backend", choices=["python", "onnxruntime", "tensorrt"],
                   help="network model (default: python for .onnx, tensorrt for .plan): python = ONNX Runtime + "
                        "custom ops in the Python backend; onnxruntime = Triton's onnxruntime backend + "
                        "model_operations; tensorrt = tensorrt_plan + plugin library")
    r.add_argument("--instances", type=positive_int, default=1, metavar="N",
                   help="instances of each model (instance_group count; default 1)")
    r.add_argument("--max-batch", type=positive_int, metavar="N",
                   help="max_batch_size (default: the model's batch for a dynamic-batch export, else 8 in the "
                        "python form and 1 in Triton's own backends)")
    r.add_argument("--max-queue-delay-us", type=nonnegative_int, default=2000, metavar="US",
                   help="dynamic batching: longest wait for more requests (default 2000)")
    add_threads(r)
    r.add_argument("--max-pixels", type=positive_int, default=40_000_000, metavar="N",
                   help="largest image accepted, in pixels (default 40000000); larger ones get an error response")
    r.add_argument("--arch", help="GPU of the serving machine for a plan, e.g. sm_86, 86 or 8.6 (default: this "
                                  "machine's)")
    r.add_argument("--tensorrt", metavar="VERSION",
                   help="TensorRT release of the serving Triton for a plan, e.g. 10.5.0 (default: this machine's)")
    r.add_argument("--plugins", metavar="LIB", help="TensorRT plugin library (default: the one the plan was built with, "
                                                        "else as mrcnn-build-engine finds it)")
    r.add_argument("--mount", metavar="PATH",
                   help="absolute path at which the server sees the repository (e.g. /models in a container); "
                        "used for library paths in configs and server flags")
    r.add_argument("--force", action="store_true", help="replace model folders of the same names")

    s = sub.add_parser("serve", help="run tritonserver on 127.0.0.1 with a repository",
                       description="Run tritonserver on 127.0.0.1 (a full Triton install when found, else the "
                                   "standalone server of nvidia-pytriton) until Ctrl-C.")
    s.add_argument("repo", metavar="REPO", help="model repository (mrcnn-triton repo)")
    s.add_argument("--http-port", type=port_number, default=8000, help="HTTP port (default 8000; 0 = any free)")
    s.add_argument("--grpc-port", type=port_number, default=8001, help="gRPC port (default 8001; 0 = any free)")
    s.add_argument("--metrics-port", type=port_number, default=8002, help="metrics port (default 8002; 0 = any free)")
    s.add_argument("--server", metavar="PATH", help="tritonserver binary (default: see serve/server.py)")
    s.add_argument("--log", metavar="FILE", help="write the server's log here (default: shown on failure only)")
    s.add_argument("--timeout", type=positive_int, default=300, metavar="S",
                   help="seconds to wait for the models to load (default 300)")
    s.add_argument("--verbose", action="store_true", help="verbose server log")

    i = sub.add_parser("infer", help="send images to a server and print / write the JSON of each",
                       description="Send images to the mrcnn ensemble over HTTP or gRPC.")
    i.add_argument("url", metavar="URL", help="http://HOST:PORT (HTTP, the default), grpc://HOST:PORT or HOST:PORT")
    i.add_argument("images", nargs="+", metavar="IMAGE", help="image files and/or folders of images")
    add_output(i, what="folder", help="write NAME.json per image + summary.json here (default: print one JSON "
                                      "document per line)")
    i.add_argument("--model", default="mrcnn", help="ensemble name (default mrcnn)")
    i.add_argument("--protocol", choices=["http", "grpc"], help="when the URL has no scheme (default http)")
    i.add_argument("--batch", type=positive_int, default=1, metavar="N", help="images per request (default 1)")
    return p


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return {"repo": cmd_repo, "serve": cmd_serve, "infer": cmd_infer}[args.command](args)


def cmd_repo(args) -> int:
    from .repository import RepoOptions, describe, write_repository

    options = RepoOptions(name=args.name, backend=args.backend, instances=args.instances, max_batch=args.max_batch,
                          queue_delay_us=args.max_queue_delay_us, threads=args.threads, max_pixels=args.max_pixels,
                          arch=args.arch, tensorrt=args.tensorrt, plugins=args.plugins, mount=args.mount,
                          force=args.force)
    summary = write_repository(args.model, args.out, options)
    print(describe(summary))
    return 0


def cmd_serve(args) -> int:
    from .server import TritonServer

    server = TritonServer(args.repo, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, server=args.server, log_file=args.log,
                          verbose=args.verbose)
    kind = "standalone (nvidia-pytriton, Python backend only)" if server.install.standalone else "full"
    print(f"starting {server.install.binary} ({kind}) with {len(server.models)} model(s) ...", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)   # `kill` stops the server as Ctrl-C does
    try:
        server.start(timeout=args.timeout)
        print(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url}; models: "
              f"{', '.join(server.models)}; Ctrl-C stops", flush=True)
        code = server.wait()
        raise UserError(f"tritonserver exited with code {code}: {server.log_errors()}")
    except KeyboardInterrupt:
        print("stopping ...", file=sys.stderr)
        return 0
    finally:
        server.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_infer(args) -> int:
    from ..data.base import ImageFolderDataset
    from ..fileio import write_json_atomic
    from .client import TritonClient, default_json_name

    files = []
    for p in args.images:
        ds = ImageFolderDataset(p)
        files += [ds.image_path(k) for k in range(len(ds))]
    client = TritonClient(args.url, protocol=args.protocol, model=args.model)
    if not client.is_ready():
        raise UserError(f"model {args.model} is not ready at {client.protocol}://{client.url} "
                        f"(is mrcnn-triton serve running?)")
    summary, ok = [], 0
    chunks = range(0, len(files), args.batch)
    for start in progress(chunks, total=len(chunks), desc="infer", unit="request"):
        chunk = files[start:start + args.batch]
        try:
            datas = []
            for f in chunk:
                with open(f, "rb") as fh:
                    datas.append(fh.read())
            docs = client.detect(datas)
        except (UserError, OSError) as e:
            print(f"warning: {', '.join(chunk)}: {e}", file=sys.stderr)
            summary += [{"image": f, "error": str(e)} for f in chunk]
            continue
        for f, doc in zip(chunk, docs):
            doc["image"] = f
            ok += 1
            if args.out:
                name = default_json_name(f)
                write_json_atomic(os.path.join(args.out, name), doc)
                summary.append({"image": f, "json": name, "detections": len(doc["detections"])})
            else:
                print(json.dumps(doc), flush=True)
    client.close()
    if args.out:
        write_json_atomic(os.path.join(args.out, "summary.json"), {"processed": ok, "images": summary})
        print(f"{ok}/{len(files)} images processed; results in {args.out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

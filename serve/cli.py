"""``mrcnn-triton``: serve an exported model on NVIDIA Triton Inference Server.

    mrcnn-triton repo model.onnx -o triton_repo --instances 2 --max-batch 8
    mrcnn-triton serve triton_repo --http-port 8000 --grpc-port 8001 --metrics-port 8002
    mrcnn-triton infer http://127.0.0.1:8000 photo.jpg photos/ -o results/

repo:  writes a model repository: ensemble "mrcnn" (encoded image bytes in, mrcnn-demo's
       per-image JSON out) = preprocess -> network -> postprocess. The network runs ONNX
       Runtime with the custom ops in the Python backend (.onnx, any CPU), Triton's
       onnxruntime backend (--backend onnxruntime) or a TensorRT plan (.plan, GPU servers).
serve: runs tritonserver on 127.0.0.1 with that repository until Ctrl-C or SIGTERM (exit 0).
       Open to local clients: health, metadata, inference, model config, statistics; the
       shared-memory, model-repository, trace and logging endpoints are off unless
       --admin-key-file gives a key. A dead Python-backend stub or a crashed server is
       restarted (--max-restarts); /dev/shm is cleaned on every exit.
infer: sends images over HTTP or gRPC and prints (or writes) the JSON of each. Exit codes:
       0 all images done, 4 some failed (listed), 1 none done, 2 a user error.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import stat
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .. import options
from ..cli import progress, run_main
from ..data.base import ImageFolderDataset
from ..errors import EXIT_INPUTS_SKIPPED, EXIT_NOTHING_DONE, UserError
from ..fileio import output_folder, write_json_atomic
from ..options import nonnegative_int, port_number, positive_int
from .access import AdminAccess, read_admin_key
from .client import TritonClient, json_names
from .repository import RepoOptions, describe, write_repository
from .server import TritonServer, describe_exit


def model_name(text: str) -> str:
    """A Triton model name as mrcnn-triton repo writes them (it becomes part of request URLs)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '_', '-', '.'")
    return text


@dataclass(frozen=True)
class RepoOptionsGroup(options.OptionGroup):
    """The options of ``mrcnn-triton repo`` after -o -> :class:`~mrcnn_trt.serve.repository.RepoOptions`."""

    threads: options.ThreadOptions = options.ThreadOptions()

    def add(self, parser):
        parser.add_argument("--name", default="mrcnn", help="ensemble name; the other models are NAME_preprocess, "
                                                            "NAME_network, NAME_postprocess (default mrcnn)")
        parser.add_argument("--backend", choices=["python", "onnxruntime", "tensorrt"],
                            help="network model (default: python for .onnx, tensorrt for .plan): python = ONNX "
                                 "Runtime + custom ops in the Python backend; onnxruntime = Triton's onnxruntime "
                                 "backend + model_operations; tensorrt = tensorrt_plan + plugin library")
        parser.add_argument("--instances", type=positive_int, default=1, metavar="N",
                            help="instances of each model (instance_group count; default 1)")
        parser.add_argument("--max-batch", type=positive_int, metavar="N",
                            help="max_batch_size (default: the model's batch for a dynamic-batch export, else 8 in "
                                 "the python form and 1 in Triton's own backends)")
        parser.add_argument("--max-queue-delay-us", type=nonnegative_int, default=2000, metavar="US",
                            help="dynamic batching: longest wait for more requests (default 2000)")
        self.threads.add(parser)
        parser.add_argument("--max-pixels", type=positive_int, default=40_000_000, metavar="N",
                            help="largest image accepted, in pixels (default 40000000); larger ones get an error "
                                 "response")
        parser.add_argument("--arch", help="GPU of the serving machine for a plan, e.g. sm_86, 86 or 8.6 (default: "
                                           "this machine's)")
        parser.add_argument("--tensorrt", metavar="VERSION",
                            help="TensorRT release of the serving Triton for a plan, e.g. 10.5.0 (default: this "
                                 "machine's)")
        parser.add_argument("--plugins", metavar="LIB", help="TensorRT plugin library (default: the one the plan was "
                                                             "built with, else as mrcnn-build-engine finds it)")
        parser.add_argument("--mount", metavar="PATH",
                            help="absolute path at which the server sees the repository (e.g. /models in a "
                                 "container); used for library paths in configs and server flags")
        parser.add_argument("--force", action="store_true", help="replace model folders of the same names")

    def parse(self, args) -> RepoOptions:
        return RepoOptions(name=args.name, backend=args.backend, instances=args.instances, max_batch=args.max_batch,
                           queue_delay_us=args.max_queue_delay_us, threads=self.threads.parse(args),
                           max_pixels=args.max_pixels, arch=args.arch, tensorrt=args.tensorrt, plugins=args.plugins,
                           mount=args.mount, force=args.force)


@dataclass(frozen=True)
class ServerOptions(options.OptionGroup):
    """The options of ``mrcnn-triton serve`` -> a :class:`~mrcnn_trt.serve.server.TritonServer`
    (not started; ``--timeout`` and ``--max-restarts`` are read when it runs)."""

    def add(self, parser):
        parser.add_argument("repo", metavar="REPO", help="model repository (mrcnn-triton repo)")
        for name, port in (("http", 8000), ("grpc", 8001), ("metrics", 8002)):
            label = "HTTP" if name == "http" else "gRPC" if name == "grpc" else name
            parser.add_argument(f"--{name}-port", type=port_number, default=port,
                                help=f"{label} port (default {port}; 0 = any free)")
        parser.add_argument("--server", metavar="PATH", help="tritonserver binary (default: see serve/server.py)")
        parser.add_argument("--log", metavar="FILE", help="write the server's log here (default: shown on failure only)")
        parser.add_argument("--timeout", type=positive_int, default=300, metavar="S",
                            help="seconds to wait for the models to load (default 300)")
        parser.add_argument("--verbose", action="store_true", help="verbose server log")
        parser.add_argument("--admin-key-file", metavar="FILE",
                            help="enable the shared-memory, model-repository, trace and logging endpoints for "
                                 "requests with the header mrcnn-admin-key: <the first line of FILE> (only its owner "
                                 "may read FILE). Default: those endpoints are off. Other local users can read the "
                                 "key in tritonserver's command line")
        parser.add_argument("--max-restarts", type=nonnegative_int, default=3, metavar="N",
                            help="restart a server whose Python-backend stub died or that crashed, up to N times in "
                                 "10 minutes, then stop with an error (default 3; 0: stop at the first failure)")

    def parse(self, args) -> TritonServer:
        access = AdminAccess(read_admin_key(args.admin_key_file)) if args.admin_key_file else AdminAccess()
        return TritonServer(args.repo, http_port=args.http_port, grpc_port=args.grpc_port,
                            metrics_port=args.metrics_port, server=args.server, log_file=args.log,
                            verbose=args.verbose, access=access)


@dataclass(frozen=True)
class InferOptions(options.OptionGroup):
    """The options of ``mrcnn-triton infer`` -> the image files to send (folders expanded)."""

    def add(self, parser):
        parser.add_argument("url", metavar="URL",
                            help="http://HOST:PORT (HTTP, the default), grpc://HOST:PORT or HOST:PORT")
        parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files and/or folders of images")
        options.add_output(parser, what="folder", help="write NAME.json per image + summary.json here (default: "
                                                       "print one JSON document per line)")
        parser.add_argument("--model", default="mrcnn", type=model_name, help="ensemble name (default mrcnn)")
        parser.add_argument("--protocol", choices=["http", "grpc"], help="when the URL has no scheme (default http)")
        parser.add_argument("--batch", type=positive_int, default=1, metavar="N", help="images per request (default 1)")

    def parse(self, args) -> List[str]:
        files = []
        for p in args.images:
            ds = ImageFolderDataset(p)
            files += [ds.image_path(k) for k in range(len(ds))]
        return files


REPO = RepoOptionsGroup()
SERVER = ServerOptions()
INFER = InferOptions()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-triton", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{repo,serve,infer}",
                           help="what to do (each has its own --help)")

    r = sub.add_parser("repo", help="write a Triton model repository from an exported model",
                       description="Write a Triton model repository (see serve/repository.py).")
    r.add_argument("model", metavar="MODEL", help="model.onnx (mrcnn-export) or model.plan (mrcnn-build-engine), "
                                                  "with its .json sidecar")
    options.add_output(r, required=True, what="folder", help="repository folder (created; other models in it are "
                                                             "kept)")
    REPO.add(r)
    SERVER.add(sub.add_parser("serve", help="run tritonserver on 127.0.0.1 with a repository",
                              description="Run tritonserver on 127.0.0.1 (a full Triton install when found, else "
                                          "the standalone server of nvidia-pytriton) until Ctrl-C."))
    INFER.add(sub.add_parser("infer", help="send images to a server and print / write the JSON of each",
                             description="Send images to the mrcnn ensemble over HTTP or gRPC."))
    return p


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return {"repo": cmd_repo, "serve": cmd_serve, "infer": cmd_infer}[args.command](args)


def cmd_repo(args) -> int:
    repo_options = REPO.parse(args)
    with contextlib.suppress(ImportError):   # the load check's refusals are reported in one line, not logged
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    summary = write_repository(args.model, args.out, repo_options)
    print(describe(summary))
    return 0


def cmd_serve(args) -> int:
    server = SERVER.parse(args)
    kind = "standalone (nvidia-pytriton, Python backend only)" if server.install.standalone else "full"
    print(f"starting {server.install.binary} ({kind}) with {len(server.models)} model(s) ...", file=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)   # `kill` stops the server as Ctrl-C does
    try:
        server.start(timeout=args.timeout)
        print(f"ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url}; models: "
              f"{', '.join(server.models)}; {server.access.describe()}; Ctrl-C stops", flush=True)
        code = server.supervise(timeout=args.timeout, max_restarts=args.max_restarts,
                                notify=lambda line: print(f"warning: {line}", file=sys.stderr, flush=True))
        raise UserError(f"tritonserver {describe_exit(code)} (stopped from outside): {server.log_errors()}")
    except KeyboardInterrupt:
        print("stopping ...", file=sys.stderr)
        return 0
    finally:
        # a second Ctrl-C must not leave the server or its /dev/shm regions behind (stop() is bounded)
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        server.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class _InferRun:
    """What ``mrcnn-triton infer`` has done so far: each image's JSON written to ``out``
    (or printed as one line), failures warned about, all of it listed in summary.json."""

    def __init__(self, files: List[str], out: Optional[str]):
        self.names, self.out = json_names(files), out
        self.summary: List[dict] = []
        self.ok = self.failed = 0

    def fail(self, f: str, why: str) -> None:
        print(f"warning: {f}: {why}; skipped", file=sys.stderr)
        self.summary.append({"image": f, "error": why})
        self.failed += 1

    def send(self, client: TritonClient, files: List[str]) -> None:
        """One request with the readable ones of ``files``; each result kept or failed."""
        chunk, datas = [], []
        for f in files:
            try:
                datas.append(_read_image_file(f))
                chunk.append(f)
            except UserError as e:
                self.fail(f, str(e))
        for f, doc in zip(chunk, client.detect_each(datas) if datas else []):
            if isinstance(doc, Exception):
                self.fail(f, str(doc))
            else:
                self.keep(f, doc)

    def keep(self, f: str, doc: dict) -> None:
        doc["image"] = f
        self.ok += 1
        if self.out:
            write_json_atomic(os.path.join(self.out, self.names[f]), doc)
            self.summary.append({"image": f, "json": self.names[f], "detections": len(doc["detections"])})
        else:
            print(json.dumps(doc), flush=True)

    def write_summary(self) -> None:
        if self.out and self.summary:
            write_json_atomic(os.path.join(self.out, "summary.json"),
                              {"processed": self.ok, "failed": self.failed, "images": self.summary})


def cmd_infer(args) -> int:
    files = INFER.parse(args)
    run = _InferRun(files, args.out)
    client = TritonClient(args.url, protocol=args.protocol, model=args.model)
    try:
        client.check_ready()
        with output_folder(args.out) if args.out else contextlib.nullcontext():
            try:
                for start in progress(range(0, len(files), args.batch), total=-(-len(files) // args.batch),
                                      desc="infer", unit="request"):
                    run.send(client, files[start:start + args.batch])
            finally:   # also after Ctrl-C: what was done is listed
                run.write_summary()
    finally:
        client.close()
    where = f"; results in {args.out}" if args.out else ""
    print(f"{run.ok}/{len(files)} images processed{where}", file=sys.stderr)
    if not run.ok:
        return EXIT_NOTHING_DONE
    return EXIT_INPUTS_SKIPPED if run.failed else 0


def _read_image_file(path: str) -> bytes:
    """The bytes of a regular file (a FIFO or device named like an image would block or never end)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise UserError("not a regular file")
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise UserError(f"cannot read it: {e.strerror or e}") from None


if __name__ == "__main__":
    sys.exit(main())

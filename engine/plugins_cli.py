"""``mrcnn-build-plugins``: build ``libmrcnn_trt_plugins.so`` for the installed TensorRT.

    mrcnn-build-plugins --tensorrt-include TensorRT/include   # TensorRT for RTX: NVIDIA/TensorRT's include/ at 11.x
    mrcnn-build-plugins --family tensorrt --tensorrt-include /opt/TensorRT-10.4.0/include --cuda-archs 86
    mrcnn-build-plugins --cuda-archs sm_86,sm_89 --nvcc /usr/local/cuda-12.8/bin/nvcc

The family (TensorRT or TensorRT for RTX) and its release come from the
Python bindings that import (``--family auto``); the library is linked
against the very shared library those bindings load. Headers: ``--tensorrt-include
DIR``, else ``$TENSORRT_ROOT/include``, else the installed SDK. TensorRT for
RTX needs TensorRT-11-layout headers and gets the IPluginV3 adapters.

CUDA kernels are compiled with nvcc (``--nvcc``, ``$CUDACXX``, ``nvcc`` on the
PATH, ``$CUDA_HOME``) for ``--cuda-archs`` (SASS for each + PTX for the
highest; default: every target of TensorRT for RTX that this nvcc knows, or
the visible GPU for TensorRT) and the CUDA runtime is linked statically when
the toolkit has ``libcudart_static.a``.

The library goes to ``plugins/lib/<family>/`` of the checkout (the folder of the
``mrcnn_trt.plugins`` package, where ``mrcnn-build-engine`` looks first) or ``-o DIR``, with
``libmrcnn_trt_plugins.so.json`` beside it. For TensorRT for RTX a small
``libtensorrt_rtx.so`` is built beside it: the RTX ONNX parser dlopens that
name, which the pip wheel does not ship; the plugin library depends on it, so
loading the plugin library is all it takes (no symlink, no LD_LIBRARY_PATH).
Before anything is written the new library is loaded in a separate process
and its creators (one per op of the contract) must appear in the family's plugin registry.
The sources and flags are those of target trt_plugins in plugins/native.json, the
description CMake and setup.py build from too.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from mrcnn_trt.cli import run_main
from mrcnn_trt.options import positive_int

from .archs import FAMILY_NAMES, RTX, TENSORRT, arch_list_type


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-build-plugins", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=["auto", TENSORRT, RTX], default="auto",
                   help="TensorRT family to build for (default auto: TensorRT if it imports, else TensorRT for RTX)")
    p.add_argument("--tensorrt-include", metavar="DIR",
                   help="TensorRT include folder (NvInfer.h, NvInferVersion.h): for TensorRT for RTX the include/ of "
                        "NVIDIA/TensorRT at an 11.x tag, or of the TensorRT for RTX SDK (README \"TensorRT "
                        "headers\"); default $TENSORRT_ROOT/include or the installed SDK")
    p.add_argument("--tensorrt-lib", metavar="DIR", help="folder of libnvinfer.so.N / libtensorrt_rtx.so.N (default: "
                                                         "the one the Python bindings load)")
    p.add_argument("--cuda-archs", "--arch", dest="cuda_archs", metavar="ARCH[,ARCH...]", type=arch_list_type,
                   help="GPU architectures of the CUDA kernels, as mrcnn-build-engine's --arch: sm_86,sm_89, 86,89 "
                        "or 8.6,8.9 (default: the family's targets that nvcc knows, or the visible GPU)")
    p.add_argument("--nvcc", metavar="PATH", help="CUDA compiler (default $CUDACXX, nvcc on the PATH, $CUDA_HOME)")
    p.add_argument("--host-cxx", metavar="PATH", help="host compiler for nvcc (default $CUDAHOSTCXX or nvcc's own)")
    p.add_argument("-o", "--out", "--output", dest="out", metavar="DIR",
                   help="output folder (default: plugins/lib/<family>/ of the checkout, the folder of the "
                        "mrcnn_trt.plugins package, where mrcnn-build-engine looks)")
    p.add_argument("--jobs", type=positive_int, default=2, metavar="N", help="parallel compiles (default 2)")
    p.add_argument("--verbose", action="store_true", help="print the compiler commands")
    return p


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .plugin_builder import build_plugins, default_dir   # the work: keeps --help free of torch

    side = build_plugins(family=args.family, tensorrt_include=args.tensorrt_include, tensorrt_lib=args.tensorrt_lib,
                         cuda_archs=args.cuda_archs, nvcc=args.nvcc, host_cxx=args.host_cxx, out_dir=args.out,
                         jobs=args.jobs, verbose=args.verbose)
    where = "" if os.path.dirname(side["library"]) == default_dir(side["family"]) else \
        f"; pass --plugins {side['library']} to mrcnn-build-engine (or set MRCNN_TRT_PLUGINS)"
    print(f"wrote {side['library']} ({FAMILY_NAMES[side['family']]} {side['family_version']}, "
          f"{side['plugin_api']}, {side['cuda_archs']}) in {side['build_seconds']} s{where}", file=sys.stderr)
    print(side["library"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The API behind ``mrcnn-build-plugins`` (``plugins_cli``): build ``libmrcnn_trt_plugins.so``
for the installed TensorRT family (:func:`build_plugins`; the command's help says what it does).

What is compiled is target ``trt_plugins`` of ``plugins/native.json``, the native build
description CMake and setup.py read too (:func:`compile_commands`); this module adds what only
this builder knows: the family's headers and library, the CUDA toolchain and architectures, the
link against the family's runtime and the load check of the result.
"""
from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from mrcnn_trt.cli import progress
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import atomic_path, sha256_file, sidecar_path, write_json_atomic
from mrcnn_trt.plugins import native_build, opdefs

from .archs import FAMILY_NAMES, RTX, TENSORRT, arch_name, parse_arch_list, parse_trt_version
from .errors import PluginLibraryMismatch
from .families import import_family
from .gpu import visible_compute_capabilities
from .plugin_library import LIB_NAME, RTX_PARSER_NAME, default_dir

OPS = tuple(opdefs.OPS)   # the creators the library must register
PLUGIN_FORMAT = "mrcnn-trt-plugins/1"


class PluginBuildFailed(UserError):
    """A compiler, the linker or the load check failed (exit 18, like a failed engine build)."""

    exit_code = 18


# --------------------------------------------------------------------------- sources
#: the library's target in plugins/native.json (the description CMake and setup.py read too)
TARGET = "trt_plugins"


def plugins_dir() -> str:
    """The plugins source folder (``plugins/`` of the checkout = ``mrcnn_trt.plugins``)."""
    return os.path.dirname(native_build.DESCRIPTION)


def description() -> native_build.NativeBuild:
    """``plugins/native.json`` read against the checkout this package comes from."""
    try:
        return native_build.load(os.path.dirname(plugins_dir()))
    except native_build.NativeBuildError as e:
        raise UserError(f"the native build description is unusable: {e}") from None


def sources(desc: native_build.NativeBuild) -> Tuple[List[str], List[str]]:
    """(CUDA sources, C++ sources) of the library, absolute: target ``trt_plugins`` of the description."""
    missing = desc.missing(TARGET)
    if missing:
        raise UserError(f"plugin sources not found ({desc.path(missing[0])}): mrcnn-build-plugins needs the "
                        f"project's plugins/ sources (an editable install, pip install -e .)")
    paths = [desc.path(p) for p in desc.target(TARGET).all_sources]
    return [p for p in paths if p.endswith(".cu")], [p for p in paths if not p.endswith(".cu")]


# --------------------------------------------------------------------------- TensorRT headers and library
def header_version(include_dir: str) -> str:
    """``NvInferVersion.h`` -> "11.1.0" (follows ``#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE``)."""
    path = os.path.join(include_dir, "NvInferVersion.h")
    try:
        text = open(path).read()
    except OSError:
        raise UserError(f"{include_dir} has no NvInferVersion.h: not a TensorRT include folder") from None
    defines = dict(re.findall(r"^\s*#\s*define\s+(\w+)\s+(\w+)", text, re.M))
    if "TRT_MAJOR_RTX" in defines:   # the TensorRT for RTX SDK's own headers: "rtx-1.7.1"
        return "rtx-" + ".".join(defines.get(f"TRT_{p}_RTX", "0") for p in ("MAJOR", "MINOR", "PATCH"))

    def value(name: str) -> str:
        v = defines.get(name, "")
        for _ in range(4):
            if v.isdigit() or v not in defines:
                break
            v = defines[v]
        if not v.isdigit():
            raise UserError(f"cannot read {name} from {path}")
        return v

    return ".".join(value(f"NV_TENSORRT_{p}") for p in ("MAJOR", "MINOR", "PATCH"))


#: where a user gets the headers (also in README "TensorRT headers")
HEADERS_HELP = {
    RTX: ("a folder with TensorRT 11's NvInfer.h and NvInferVersion.h: the include/ folder of NVIDIA's public "
          "TensorRT repository (github.com/NVIDIA/TensorRT) at an 11.x release tag, e.g. `git clone --depth 1 "
          "--branch <11.x tag> https://github.com/NVIDIA/TensorRT` then --tensorrt-include TensorRT/include, or "
          "the include/ folder of the TensorRT for RTX SDK"),
    TENSORRT: ("the include/ folder of the TensorRT SDK of the installed release (NVIDIA's tar/zip, or "
               "/usr/include/<arch>-linux-gnu from the libnvinfer-dev package), or NVIDIA/TensorRT's include/ at "
               "that release's tag"),
}


def find_tensorrt_include(family: str, given: Optional[str]) -> str:
    """The TensorRT include folder: ``given``, ``$TENSORRT_ROOT/include``, then the SDK's usual places."""
    cands = []
    if given:
        if not os.path.isfile(os.path.join(given, "NvInfer.h")):
            sub = os.path.join(given, "include")
            if os.path.isfile(os.path.join(sub, "NvInfer.h")):
                return os.path.abspath(sub)
            raise UserError(f"--tensorrt-include {given}: no NvInfer.h there")
        return os.path.abspath(given)
    root = os.environ.get("TENSORRT_ROOT")
    if root:
        cands.append(os.path.join(root, "include"))
    cands += ["/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu", "/usr/include",
              "/usr/local/TensorRT/include", "/opt/tensorrt/include"]
    for c in cands:
        if os.path.isfile(os.path.join(c, "NvInfer.h")) and os.path.isfile(os.path.join(c, "NvInferVersion.h")):
            return c
    raise UserError(f"TensorRT headers not found (TENSORRT_ROOT unset, none installed): pass --tensorrt-include DIR, "
                    f"{HEADERS_HELP[RTX if family == RTX else TENSORRT]}")


def check_headers(family, headers: str, include_dir: str) -> None:
    """The headers must suit the family: TensorRT for RTX needs the TensorRT 11
    layout; TensorRT needs its own major release (and minor before 10)."""
    if headers.startswith("rtx-"):   # the TensorRT for RTX SDK's headers: for that family only
        if family.name != RTX:
            raise PluginLibraryMismatch(f"{include_dir} holds TensorRT for RTX headers ({headers[4:]}); the "
                                        f"installed family is TensorRT {family.version}: use its own headers")
        return
    h = parse_trt_version(headers)
    if family.name == RTX:
        if h[0] < 11:
            raise PluginLibraryMismatch(f"TensorRT {headers} headers ({include_dir}) do not fit TensorRT for RTX: its "
                                        f"plugin registry has the TensorRT 11 layout (a library built with 10.x "
                                        f"headers crashes when loaded); use TensorRT 11 headers")
        return
    r = parse_trt_version(family.version)
    if h[0] != r[0] or (h[0] < 10 and h[1] != r[1]) or (h[0] >= 10 and h[1] > r[1]):
        raise PluginLibraryMismatch(f"TensorRT {headers} headers ({include_dir}) do not match the installed TensorRT "
                                    f"{family.version}: use the headers of that release")


def loaded_library(pattern: str) -> Optional[str]:
    """Path of a shared library mapped into this process whose file name matches ``pattern``."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if "/" in line else ""
                if path and re.fullmatch(pattern, os.path.basename(path)):
                    return path
    except OSError:
        pass
    return None


def find_runtime_library(family, given_dir: Optional[str]) -> str:
    """The library the plugin library links against: the one the imported
    bindings loaded (``libtensorrt_rtx.so.1`` / ``libnvinfer.so.N``)."""
    pattern = r"libtensorrt_rtx\.so\.\d+" if family.name == RTX else r"libnvinfer\.so\.\d+"
    dirs = [given_dir] if given_dir else []
    if os.environ.get("TENSORRT_ROOT"):
        dirs.append(os.path.join(os.environ["TENSORRT_ROOT"], "lib"))
    for d in dirs:
        if d and os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if re.fullmatch(pattern, name):
                    return os.path.join(d, name)
    found = loaded_library(pattern)
    if found:
        return found
    raise UserError(f"cannot find the {FAMILY_NAMES[family.name]} library ({pattern.replace(chr(92), '')}) the "
                    f"bindings use: pass --tensorrt-lib DIR")


# --------------------------------------------------------------------------- CUDA toolchain
@dataclass(frozen=True)
class CudaToolchain:
    nvcc: str
    version: str
    include: str
    lib_dirs: Tuple[str, ...]
    archs: Tuple[int, ...]        # compute_XX this nvcc can compile

    @property
    def cudart_static(self) -> Optional[str]:
        for d in self.lib_dirs:
            p = os.path.join(d, "libcudart_static.a")
            if os.path.isfile(p):
                return p
        return None

    @property
    def cudart_shared_dir(self) -> Optional[str]:
        for d in self.lib_dirs:
            if os.path.isfile(os.path.join(d, "libcudart.so")):
                return d
        return None


def find_nvcc(given: Optional[str]) -> str:
    for c in (given, os.environ.get("CUDACXX"), shutil.which("nvcc"),
              os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "bin", "nvcc"), "/usr/local/cuda/bin/nvcc"):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
        if c == given and given:
            raise UserError(f"--nvcc {given}: not an executable")
    raise UserError("no CUDA compiler found (nvcc): install the CUDA toolkit, or pass --nvcc PATH / set CUDACXX "
                    "(CUDA 12.8+ or 13 for sm_75..sm_120; CUDA 11.8 for sm_50..sm_90, see tools/fetch_cuda118.sh)")


def cuda_toolchain(nvcc: str) -> CudaToolchain:
    """Version, include/library folders (from ``nvcc --dryrun``) and archs of ``nvcc``."""
    def run(args):
        return subprocess.run([nvcc, *args], capture_output=True, text=True, timeout=120)

    v = run(["--version"])
    m = re.search(r"release (\d+\.\d+)", v.stdout)
    if v.returncode != 0 or not m:
        raise UserError(f"{nvcc} --version failed: {(v.stderr or v.stdout).strip()[:200]}")
    dry = run(["--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull])
    text = dry.stdout + dry.stderr
    incs = re.findall(r'-I"?([^"\s]+)', " ".join(re.findall(r"INCLUDES=(.*)", text)))
    libs = re.findall(r'-L"?([^"\s]+)', " ".join(re.findall(r"LIBRARIES=(.*)", text)))
    top = re.search(r"TOP=(\S+)", text)
    if top:
        incs.append(os.path.join(top.group(1), "include"))
        libs += [os.path.join(top.group(1), d) for d in ("lib64", "lib")]
    include = next((os.path.normpath(i) for i in incs if os.path.isfile(os.path.join(i, "cuda_runtime_api.h"))), None)
    if include is None:
        raise UserError(f"cannot find the CUDA headers of {nvcc} (cuda_runtime_api.h)")
    lib_dirs = tuple(os.path.normpath(d) for d in libs if os.path.isdir(d) and not d.rstrip("/").endswith("stubs"))
    a = run(["--list-gpu-arch"])
    archs = tuple(sorted({int(x) for x in re.findall(r"compute_(\d+)", a.stdout)}))
    return CudaToolchain(nvcc, m.group(1), include, lib_dirs, archs)


def parse_cuda_archs(text: str) -> List[int]:
    """``"75,86"`` / ``"sm_75,sm_86"`` / ``"7.5 8.6"`` -> [75, 86]: the ``--arch`` grammar of
    ``mrcnn-build-engine`` (:func:`mrcnn_trt.engine.archs.parse_arch_list`), sorted."""
    return sorted(parse_arch_list(text, option="--cuda-archs"))


def choose_archs(family, toolchain: CudaToolchain, given: Optional[str]) -> List[int]:
    if given:
        archs = parse_cuda_archs(given)
    elif family.name == RTX:
        archs = [c for c in (family.targets or ()) if c in toolchain.archs]
        if not archs:
            raise UserError(f"nvcc {toolchain.version} compiles none of TensorRT for RTX's targets: pass --cuda-archs")
    else:
        visible = visible_compute_capabilities()
        if not visible:
            raise UserError("no GPU visible to take the CUDA architecture from: pass --cuda-archs, e.g. 86")
        archs = sorted(set(visible))
    bad = [a for a in archs if a not in toolchain.archs]
    if bad:
        raise UserError(f"nvcc {toolchain.version} ({toolchain.nvcc}) cannot compile {arch_name(bad[0])} (it knows "
                        f"{', '.join(arch_name(a) for a in toolchain.archs)}): use another CUDA toolkit with --nvcc "
                        f"(CUDA 11.8 for sm_50..sm_72: tools/fetch_cuda118.sh)")
    return archs


# --------------------------------------------------------------------------- the build
def _run(cmd: List[str], what: str, verbose: bool) -> None:
    if verbose:
        print("+ " + " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr + r.stdout).splitlines() if "error" in ln.lower()] or \
                (r.stderr + r.stdout).strip().splitlines() or ["(no output)"]
        raise PluginBuildFailed(f"{what} failed: {lines[0].strip()[:400]}")


def _verify(lib: str, family: str) -> dict:
    """Load ``lib`` in a fresh process: its creators must be in the family's registry."""
    module = "tensorrt_rtx_bindings" if family == RTX else "tensorrt"
    code = f"""
import ctypes, json, os, sys
import {module} as trt
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
reg = trt.get_plugin_registry()
names = sorted({{c.name for c in reg.all_creators}} & set({list(OPS)!r}))
fn = lib.mrcnn_trt_plugins_info
fn.restype = ctypes.c_char_p
out = {{"creators": names, "info": json.loads(fn().decode())}}
if {family == RTX!r}:
    try:
        ctypes.CDLL("libtensorrt_rtx.so", mode=os.RTLD_NOLOAD)
        out["parser_name_resolvable"] = True
    except OSError:
        out["parser_name_resolvable"] = False
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", code, lib], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        raise PluginBuildFailed(f"the new library does not load in {FAMILY_NAMES[family]}: {tail}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["creators"] != sorted(OPS):
        raise PluginBuildFailed(f"the new library registered {res['creators']} instead of {sorted(OPS)}")
    if family == RTX and not res.get("parser_name_resolvable"):
        raise PluginBuildFailed("after loading the new library, libtensorrt_rtx.so is still not resolvable")
    return res


def compile_commands(desc: native_build.NativeBuild, *, nvcc: str, cxx: str, host_cxx: Optional[str],
                     archs: Sequence[int], defines: Sequence[str], system_includes: Sequence[str],
                     obj_dir: str) -> List[Tuple[List[str], str, str]]:
    """The compiler commands of the library, one per source of target ``trt_plugins`` in
    ``desc`` (its sources, include folders, defines and the exact-arithmetic flags):
    [(command, what, object file)]. CUDA sources: nvcc with SASS for every arch in ``archs``
    and PTX for the highest; C++ sources: ``cxx`` with ``defines`` (``NAME=value`` strings)
    and ``system_includes`` (TensorRT's and CUDA's headers)."""
    target = desc.target(TARGET)
    cu_sources, cpp_sources = sources(desc)
    includes = [a for d in target.include_dirs for a in ("-I", desc.path(d))]
    macros = [f"-D{d}" for d in target.defines]
    ptx = max(archs)
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs] + \
              [f"-gencode=arch=compute_{ptx},code=compute_{ptx}"]
    out = []
    for src in cu_sources:
        cmd = [nvcc, *(["-ccbin", host_cxx] if host_cxx else []), "-std=c++17", "-O3", *desc.exact_cuda,
               "-Xcompiler=-fPIC,-fvisibility=hidden", *macros, *includes, *gencode]
        obj = os.path.join(obj_dir, os.path.basename(src) + ".o")
        out.append((cmd + ["-c", src, "-o", obj], f"nvcc {os.path.basename(src)}", obj))
    system = [a for d in system_includes for a in ("-isystem", d)]
    for src in cpp_sources:
        cmd = [cxx, "-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden",
               *desc.exact_cxx, *target.cxx_flags, "-Wall", *macros, *[f"-D{d}" for d in defines], *includes, *system]
        obj = os.path.join(obj_dir, os.path.basename(src) + ".o")
        out.append((cmd + ["-c", src, "-o", obj], f"{os.path.basename(cxx)} {os.path.basename(src)}", obj))
    return out


def build_plugins(*, family: str = "auto", tensorrt_include: Optional[str] = None, tensorrt_lib: Optional[str] = None,
                  cuda_archs: Optional[str] = None, nvcc: Optional[str] = None, host_cxx: Optional[str] = None,
                  out_dir: Optional[str] = None, jobs: int = 2, verbose: bool = False) -> dict:
    """Build the plugin library for the installed TensorRT family (what it does:
    ``mrcnn-build-plugins --help``, :mod:`mrcnn_trt.engine.plugins_cli`). Returns its sidecar (also written as
    ``libmrcnn_trt_plugins.so.json``), with ``"library"`` = the path."""
    t0 = time.time()
    if jobs < 1:
        raise UserError("--jobs must be >= 1")
    fam = import_family(family)
    desc = description()
    sources(desc)   # all there, before anything else is looked for
    target = desc.target(TARGET)
    include = find_tensorrt_include(fam.name, tensorrt_include)
    headers = header_version(include)
    check_headers(fam, headers, include)
    runtime_lib = find_runtime_library(fam, tensorrt_lib)
    tool = cuda_toolchain(find_nvcc(nvcc))
    archs = choose_archs(fam, tool, cuda_archs)
    arch_tag = f"sass:{','.join(str(a) for a in archs)} ptx:{max(archs)}"
    out_dir = os.path.abspath(out_dir or default_dir(fam.name))
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cxx or not cc:
        raise UserError("no C/C++ compiler found (g++/gcc; or set CXX and CC)")
    host = host_cxx or os.environ.get("CUDAHOSTCXX")
    print(f"building {LIB_NAME} for {fam.label} (TensorRT {headers} headers, {include}), CUDA {tool.version} "
          f"{arch_tag}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="mrcnn-build-plugins-") as tmp:
        defines = [f'MRCNN_TRT_FAMILY="{fam.name}"', f'MRCNN_TRT_FAMILY_VERSION="{fam.version}"',
                   f'MRCNN_TRT_CUDA_ARCHS="{arch_tag}"']
        jobs_list = compile_commands(desc, nvcc=tool.nvcc, cxx=cxx, host_cxx=host, archs=archs, defines=defines,
                                     system_includes=[include, tool.include], obj_dir=tmp)
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run, cmd, what, verbose) for cmd, what, _ in jobs_list]
            try:
                for f in progress(concurrent.futures.as_completed(futures), total=len(futures), desc="compile",
                                  unit="file"):
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        objs = [obj for _, _, obj in jobs_list]

        rt_dir = os.path.dirname(runtime_lib)
        link_libs: List[str] = []
        shim = None
        if fam.name == RTX:
            shim = os.path.join(tmp, RTX_PARSER_NAME)
            shim_src = os.path.join(tmp, "rtx_name.c")
            with open(shim_src, "w") as f:
                f.write("/* libtensorrt_rtx.so: the name TensorRT for RTX's ONNX parser dlopens; depends on "
                        "libtensorrt_rtx.so.1. */\n")
            _run([cc, "-shared", "-fPIC", "-o", shim, shim_src, f"-Wl,-soname,{RTX_PARSER_NAME}", "-Wl,--no-as-needed",
                  runtime_lib, f"-Wl,-rpath,{rt_dir}"], f"linking {RTX_PARSER_NAME}", verbose)
            link_libs.append(shim)
        link_libs.append(runtime_lib)
        rpath = ["$ORIGIN", rt_dir]
        if tool.cudart_static:
            cudart = [tool.cudart_static, "-ldl", "-lrt", "-lpthread"]
        elif tool.cudart_shared_dir:
            cudart = ["-L", tool.cudart_shared_dir, "-lcudart"]
            rpath.append(tool.cudart_shared_dir)
        else:
            raise UserError(f"no CUDA runtime library (libcudart_static.a / libcudart.so) next to {tool.nvcc}")
        lib_tmp = os.path.join(tmp, LIB_NAME)
        _run([cxx, "-shared", "-o", lib_tmp, *objs, "-Wl,--no-as-needed", *link_libs, *cudart,
              f"-Wl,-rpath,{':'.join(rpath)}", "-Wl,--no-undefined", "-Wl,--exclude-libs,ALL",
              f"-Wl,--version-script={desc.path(target.export_map)}", *target.link_flags], f"linking {LIB_NAME}",
             verbose)
        check = _verify(lib_tmp, fam.name)   # the shim sits beside it in tmp too ($ORIGIN)

        os.makedirs(out_dir, exist_ok=True)
        dest = os.path.join(out_dir, LIB_NAME)
        if shim:
            with atomic_path(os.path.join(out_dir, RTX_PARSER_NAME)) as t:
                shutil.copyfile(shim, t)
                os.chmod(t, 0o755)
        with atomic_path(dest) as t:
            shutil.copyfile(lib_tmp, t)
            os.chmod(t, 0o755)
    side = {
        "format": PLUGIN_FORMAT,
        "library": dest,
        "library_sha256": sha256_file(dest),
        "family": fam.name,
        "family_version": fam.version,
        "tensorrt_headers": headers,
        "tensorrt_include": include,
        "links": runtime_lib,
        "parser_name_library": os.path.join(out_dir, RTX_PARSER_NAME) if fam.name == RTX else None,
        "plugin_api": check["info"].get("plugin_api"),
        "cuda_archs": arch_tag,
        "cuda": tool.version,
        "nvcc": tool.nvcc,
        "cudart": "static" if tool.cudart_static else "shared",
        "creators": check["creators"],
        "info": check["info"],
        "build_seconds": round(time.time() - t0, 1),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        write_json_atomic(sidecar_path(dest), side)
    except BaseException:
        os.unlink(dest)
        raise
    return side

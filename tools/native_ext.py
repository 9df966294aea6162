"""setuptools side of the native build (used by setup.py): the compiled CPU parts of ``mrcnn_trt``.

Three artifacts, all built by ``pip install`` / ``python setup.py build_ext``, each a
``python_extension`` target of ``plugins/native.json`` (the one description of the native
build, which CMake and ``mrcnn-build-plugins`` read too; ``plugins/native_build.py`` reads it):

* ``mrcnn_trt.plugins._cpu`` (target ``cpu_module``) - pybind11 module with the C++ CPU
  kernels (``cpu_extension``).
* ``plugins/libmrcnn_ort_ops.so`` (target ``ort_ops``) - ONNX Runtime custom-op library running
  the ``mrcnn`` nodes on the CPU (``ort_extension``). It needs the ORT C/C++ API headers, which
  ``tools/fetch_ort_headers.sh`` downloads into ``.cache/ort-headers`` (Debian trixie
  ``libonnxruntime-dev``, headers only). When they cannot be fetched the library is skipped
  with a warning and the install still succeeds; ``mrcnn_trt.plugins.ort`` then says why it is
  missing. The extension is ``optional``: a compile failure is a warning too.
* ``mrcnn_trt.calib._stats`` (target ``calib_stats``) - pybind11 module with the one-pass
  activation statistics of INT8 calibration (``calib_stats_extension``).

Sources, include folders, defines and the exact-arithmetic flags (``-ffp-contract=off``: no FMA
contraction, so results match the float32 PyTorch reference) come from the description; the
flags of this builder are ``-O3 -std=c++17`` with hidden visibility (no ``-march=native``: wheels
and CI machines differ).

Environment:
  MRCNN_NO_ORT_FETCH=1   never run the header download (offline builds)
  MRCNN_ORT_INCLUDE=DIR  use ORT headers from DIR (contains onnxruntime_cxx_api.h)
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

try:
    from setuptools import Extension
    from setuptools.command.build_ext import build_ext
except ImportError:  # build_cpu_module_inplace (tools/gpu_check.sh) needs no setuptools
    Extension = build_ext = None

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: this builder's flags; the exact-arithmetic ones are added from the description
BASE_CXX_FLAGS = ["-O3", "-g0", "-std=c++17", "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-Wall"]
ORT_LIB_NAME = "libmrcnn_ort_ops"


def _native_build():
    """plugins/native_build.py, loaded by path: nothing of mrcnn_trt is installed while setup.py runs."""
    path = os.path.join(REPO_ROOT, "plugins", "native_build.py")
    spec = importlib.util.spec_from_file_location("_mrcnn_native_build", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


native_build = _native_build()


def description(repo_root: str = REPO_ROOT):
    """``plugins/native.json`` of the checkout at ``repo_root`` (a ``native_build.NativeBuild``)."""
    return native_build.load(repo_root, os.path.join(repo_root, "plugins", "native.json"))


def cxx_flags(desc, target) -> list:
    """Compile flags of a target: this builder's, the exact-arithmetic ones, the target's extras."""
    return BASE_CXX_FLAGS + list(desc.exact_cxx) + list(target.cxx_flags)


def kernel_headers(repo_root: str):
    """Headers the CPU sources include (so that editing one triggers a rebuild)."""
    return sorted(os.path.relpath(p, repo_root) for p in glob.glob(os.path.join(repo_root, "plugins", "*", "*.h")))


def extension(repo_root: str, name: str, include_dirs=(), **kwargs) -> Extension:
    """The setuptools Extension of ``python_extension`` target ``name`` of the description."""
    desc = description(repo_root)
    t = desc.target(name)
    if t.kind != "python_extension" or "setuptools" not in t.built_by:
        raise ValueError(f"plugins/native.json: {name} is not a python_extension built by setuptools")
    return Extension(
        t.module,
        sources=list(t.all_sources),   # relative to setup.py's folder, as setuptools wants them
        include_dirs=list(include_dirs) + [desc.path(d) for d in t.include_dirs],
        define_macros=[tuple(d.split("=", 1)) if "=" in d else (d, None) for d in t.defines],
        extra_compile_args=cxx_flags(desc, t),
        extra_link_args=list(t.link_flags),
        export_symbols=list(t.exports) or None,
        language="c++",
        **kwargs,
    )


def cpu_extension(repo_root: str) -> Extension:
    """The pybind11 module ``mrcnn_trt.plugins._cpu``."""
    import pybind11  # build requirement (pyproject.toml)

    return extension(repo_root, "cpu_module", [pybind11.get_include()], depends=kernel_headers(repo_root))


def calib_stats_extension(repo_root: str) -> Extension:
    """The pybind11 module ``mrcnn_trt.calib._stats`` (calibration statistics, see calib/stats.py)."""
    import pybind11  # build requirement (pyproject.toml)

    return extension(repo_root, "calib_stats", [pybind11.get_include()])


def ort_include_dir(repo_root: str, fetch: bool = True) -> str | None:
    """Folder with ``onnxruntime_cxx_api.h``; runs the fetch script if needed (None if unavailable)."""
    env_dir = os.environ.get("MRCNN_ORT_INCLUDE")
    if env_dir:
        return env_dir if os.path.isfile(os.path.join(env_dir, "onnxruntime_cxx_api.h")) else None
    cached = os.path.join(repo_root, ".cache", "ort-headers", "root", "usr", "include", "onnxruntime")
    if os.path.isfile(os.path.join(cached, "onnxruntime_cxx_api.h")):
        return cached
    if not fetch or os.environ.get("MRCNN_NO_ORT_FETCH") == "1":
        return None
    script = os.path.join(repo_root, "tools", "fetch_ort_headers.sh")
    try:
        res = subprocess.run(["bash", script], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"warning: could not fetch the ONNX Runtime headers ({e}); "
              "the ORT custom ops will be unavailable", file=sys.stderr)
        return None
    if res.returncode != 0:
        print("warning: tools/fetch_ort_headers.sh failed; the ORT custom ops will be unavailable:\n"
              + res.stderr[-2000:], file=sys.stderr)
        return None
    return cached if os.path.isfile(os.path.join(cached, "onnxruntime_cxx_api.h")) else None


def ort_extension(repo_root: str, fetch: bool = True) -> Extension | None:
    """The ONNX Runtime custom-op library, or None when the ORT headers are unavailable."""
    inc = ort_include_dir(repo_root, fetch)
    if inc is None:
        return None
    return extension(repo_root, "ort_ops", [inc], depends=kernel_headers(repo_root), optional=True)


#: where built extensions are kept for reuse (see BuildExt)
NATIVE_CACHE = os.path.join(".cache", "native")


def _file_digest(h, path: str) -> None:
    h.update(path.encode() + b"\0")
    try:
        with open(path, "rb") as f:
            h.update(f.read())
    except OSError:
        h.update(b"<missing>")


def extension_stamp(ext, repo_root: str, compiler_id: str = "") -> str:
    """A digest of everything that makes an extension's binary: its name, sources and
    headers (contents), the headers of its include folders that are ours or ORT's,
    flags, the Python ABI, the pybind11 version and the compiler. Equal stamps: the
    binary built before can be reused."""
    h = hashlib.sha256()
    # pybind11's include folder lies in pip's temporary build environment: its version stands for it
    includes = ["pybind11" if "pybind11" in d else d for d in ext.include_dirs or []]
    for item in (ext.name, sysconfig.get_config_var("EXT_SUFFIX") or "", sys.version, compiler_id,
                 " ".join(ext.extra_compile_args or []), " ".join(ext.extra_link_args or []),
                 " ".join(includes), " ".join(map(str, ext.define_macros or []))):
        h.update(str(item).encode() + b"\0")
    try:
        import pybind11

        h.update(pybind11.__version__.encode())
    except ImportError:
        pass
    files = list(ext.sources) + list(ext.depends or [])
    for inc in ext.include_dirs or []:   # ORT's headers (a new version of them) and pybind11's are inputs too
        if os.path.isdir(inc) and "pybind11" not in inc:
            files += sorted(glob.glob(os.path.join(inc, "*.h")))
    for f in files:
        _file_digest(h, f if os.path.isabs(f) else os.path.join(repo_root, f))
    return h.hexdigest()


def _compiler_id(compiler) -> str:
    """The C++ compiler's command and version (part of the stamp)."""
    cmd = list(getattr(compiler, "compiler_so", None) or getattr(compiler, "compiler_cxx", None) or ["c++"])
    try:
        out = subprocess.run([cmd[0], "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return " ".join(cmd) + "\n" + out.splitlines()[0] if out else " ".join(cmd)


class BuildExt(build_ext if build_ext is not None else object):
    """build_ext that names the ORT library plainly ``libmrcnn_ort_ops.so`` and
    reuses the extensions built before when nothing that goes into them changed.

    The ORT library is loaded by ONNX Runtime (dlopen), not imported by Python, so
    it gets no ``.cpython-3xx-...`` suffix.

    Reuse: ``pip install -e .`` builds in a fresh temporary folder every time, so
    setuptools alone recompiles all three extensions (1.5-2 minutes) on every install,
    e.g. for each ``pip install -e ".[extra]"``. Each extension built here is copied
    to ``.cache/native/`` with its :func:`extension_stamp`; when the stamp of a new
    build matches, the copy is used instead of compiling (``MRCNN_REBUILD_NATIVE=1``
    forces a compile).
    """

    def build_extension(self, ext):
        repo_root = REPO_ROOT
        target = self.get_ext_fullpath(ext.name)
        cache_dir = os.path.join(repo_root, NATIVE_CACHE)
        cached = os.path.join(cache_dir, os.path.basename(target))
        stamp_file = cached + ".stamp"
        try:
            stamp = extension_stamp(ext, repo_root, _compiler_id(self.compiler))
        except Exception:  # noqa: BLE001  (never let the cache stop a build)
            stamp = None
        if stamp and not self.force and os.environ.get("MRCNN_REBUILD_NATIVE") != "1" and os.path.isfile(cached):
            try:
                with open(stamp_file) as f:
                    same = f.read().strip() == stamp
            except OSError:
                same = False
            if same:
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                shutil.copy2(cached, target)
                print(f"reusing {os.path.relpath(cached, repo_root)} for {ext.name} (sources unchanged)",
                      file=sys.stderr)
                return
        super().build_extension(ext)
        if stamp and os.path.isfile(target):
            try:
                os.makedirs(cache_dir, exist_ok=True)
                shutil.copy2(target, cached + ".tmp")
                os.replace(cached + ".tmp", cached)
                with open(stamp_file + ".tmp", "w") as f:
                    f.write(stamp + "\n")
                os.replace(stamp_file + ".tmp", stamp_file)
            except OSError as e:   # a read-only checkout: build every time, as before
                print(f"warning: could not keep {ext.name} for reuse: {e}", file=sys.stderr)

    def get_ext_filename(self, fullname):
        # called with the full dotted name or only its last part
        if fullname.split(".")[-1] == ORT_LIB_NAME:
            return os.path.join(*fullname.split(".")) + ".so"
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        # the description's exports (the ORT library's entry points), else setuptools' PyInit_<name>
        return ext.export_symbols or super().get_export_symbols(ext)


def ext_modules(repo_root: str):
    """All extensions to build (the ORT library only when its headers are there)."""
    exts = [cpu_extension(repo_root), calib_stats_extension(repo_root)]
    ort = ort_extension(repo_root)
    if ort is not None:
        exts.append(ort)
    return exts


# --------------------------------------------------------------------------- without setuptools
def build_cpu_module_inplace(repo_root: str = REPO_ROOT, cxx: str | None = None, jobs: int = 4,
                             force: bool = False) -> str:
    """Compile ``mrcnn_trt.plugins._cpu`` for the running Python straight into ``plugins/``
    with the C++ compiler (no setuptools, no install: what tools/gpu_check.sh does on a
    machine with another Python). Same sources and flags as :func:`cpu_extension`.
    Skipped when the module is newer than every source and header. Returns its path."""
    import pybind11

    desc = description(repo_root)
    target = desc.target("cpu_module")
    sources = list(target.all_sources)
    out = os.path.join(repo_root, "plugins", "_cpu" + sysconfig.get_config_var("EXT_SUFFIX"))
    inputs = [os.path.join(repo_root, p) for p in sources + kernel_headers(repo_root)]
    if not force and os.path.isfile(out) and os.path.getmtime(out) >= max(os.path.getmtime(p) for p in inputs):
        return out
    cxx = cxx or os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise RuntimeError("no C++ compiler (set CXX)")
    incs = ["-I" + pybind11.get_include(), "-I" + sysconfig.get_paths()["include"]]
    incs += ["-I" + desc.path(d) for d in target.include_dirs]
    incs += ["-D" + d for d in target.defines]
    objdir = os.path.join(repo_root, ".cache", "cpu-module-" + sysconfig.get_config_var("SOABI"))
    os.makedirs(objdir, exist_ok=True)

    def compile_one(src):
        obj = os.path.join(objdir, os.path.basename(src) + ".o")
        subprocess.run([cxx, "-c", "-fPIC", *cxx_flags(desc, target), *incs, os.path.join(repo_root, src), "-o", obj],
                       check=True)
        return obj

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        objs = list(pool.map(compile_one, sources))
    tmp = out + ".tmp"
    subprocess.run([cxx, "-shared", *objs, *target.link_flags, "-o", tmp], check=True)
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build mrcnn_trt.plugins._cpu in place for this Python "
                                             "(no setuptools; see build_cpu_module_inplace).")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    a = ap.parse_args(argv)
    print(build_cpu_module_inplace(jobs=a.jobs, force=a.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())

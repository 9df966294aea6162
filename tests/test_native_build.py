"""One description of the native build: plugins/native.json, and its three builders use exactly it.

* the description itself: its op list is the contract's (``MRCNN_CONTRACT_OPS``), every file it
  names exists, and a contract with a fourth op gives every per-op target that op's sources with
  no edit of the description;
* CMake: a configure of the CPU targets (and, where a CUDA compiler is there, the CUDA targets
  and the TensorRT plugin library against a stand-in TensorRT) read back through CMake's file
  API: each target compiles exactly its sources, links exactly the targets it uses, and every
  C++ / nvcc compile carries the exact-arithmetic flags and the target's defines and include
  folders;
* setup.py (``tools/native_ext.py``): the extensions' sources, flags and exports;
* ``mrcnn-build-plugins`` (``mrcnn_trt.engine.plugin_builder.compile_commands``): the nvcc and
  C++ commands of the TensorRT plugin library.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from mrcnn_trt.engine import plugin_builder
from mrcnn_trt.plugins import native_build
from mrcnn_trt.plugins.opdefs import OPS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESC = native_build.load(REPO)
_spec = importlib.util.spec_from_file_location("native_ext", os.path.join(REPO, "tools", "native_ext.py"))
native_ext = importlib.util.module_from_spec(_spec)   # setup.py's helper (tools/ is not a package)
_spec.loader.exec_module(native_ext)
SHARED_HEADERS = os.path.normpath(os.path.join(REPO, "..", "shared", "third_party", "tensorrt-include", "10.13.3"))


def _raw():
    with open(os.path.join(REPO, "plugins", "native.json")) as f:
        return json.load(f)


# --------------------------------------------------------------------------- the description
def test_ops_are_the_contracts():
    assert [op for op, _ in DESC.ops] == list(OPS)
    assert DESC.target("kernels_cpu").sources == tuple(f"plugins/{folder}/{folder}_cpu.cpp" for _, folder in DESC.ops)
    assert DESC.target("kernels_cuda").sources == ("plugins/common/nms_cuda.cu",) + tuple(
        f"plugins/{folder}/{folder}_cuda.cu" for _, folder in DESC.ops)


def test_every_named_file_exists():
    for name in DESC.targets:
        assert DESC.missing(name) == [], name
    assert DESC.exact_cxx == ("-ffp-contract=off",)
    assert DESC.exact_cuda == ("--fmad=false", "-Xcompiler=-ffp-contract=off")


def test_uses_resolve_depth_first_once():
    t = DESC.target("trt_plugins")
    assert t.all_sources == (("plugins/trt/mrcnn_trt_plugins.cpp",) + DESC.target("kernels_cuda").sources
                             + ("plugins/host/plugin_host.cpp",))
    assert t.include_dirs == ("plugins", "plugins/host") and t.defines == ("MRCNN_WITH_CUDA",)


def test_a_fourth_op_needs_no_edit_of_the_description(tmp_path):
    header = tmp_path / "plugins" / "common" / "op_contract.h"
    header.parent.mkdir(parents=True)
    with open(os.path.join(REPO, "plugins", "common", "op_contract.h")) as f:
        text = f.read()
    header.write_text(text.replace("X(DetectionLayer, detection_layer)",
                                   "X(DetectionLayer, detection_layer) X(RoiHeads, roi_heads)"))
    shutil.copy(os.path.join(REPO, "plugins", "native.json"), tmp_path / "plugins" / "native.json")
    desc = native_build.load(str(tmp_path), str(tmp_path / "plugins" / "native.json"))
    assert desc.ops[-1] == ("RoiHeads", "roi_heads")
    for name in ("kernels_cpu", "cpu_module", "ort_ops", "check_cuda_kernels"):
        assert "plugins/roi_heads/roi_heads_cpu.cpp" in desc.target(name).all_sources, name
    for name in ("kernels_cuda", "cuda_ops", "trt_plugins"):
        assert "plugins/roi_heads/roi_heads_cuda.cu" in desc.target(name).all_sources, name


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["targets"]["cuda_ops"]["uses"].append("nope"), "unknown target 'nope'"),
    (lambda d: d["targets"]["plugin_host"].update(uses=["plugin_host_test"]), "a cycle in uses"),
    (lambda d: d["targets"]["kernels_cpu"].update(kind="module"), "kind must be one of"),
    (lambda d: d.update(format="mrcnn-native/0"), "expected 'mrcnn-native/1'"),
])
def test_malformed_descriptions_are_refused(tmp_path, edit, message):
    raw = _raw()
    edit(raw)
    path = tmp_path / "native.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(native_build.NativeBuildError, match=message):
        native_build.load(REPO, str(path))


# --------------------------------------------------------------------------- CMake
def _configure(build, *args, env=None):
    query = os.path.join(build, ".cmake", "api", "v1", "query")
    os.makedirs(query, exist_ok=True)
    open(os.path.join(query, "codemodel-v2"), "w").close()
    r = subprocess.run(["cmake", "-S", REPO, "-B", build, *args], capture_output=True, text=True, timeout=600,
                       env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    reply = os.path.join(build, ".cmake", "api", "v1", "reply")
    with open(sorted(glob.glob(os.path.join(reply, "index-*.json")))[-1]) as f:
        index = json.load(f)
    with open(os.path.join(reply, index["reply"]["codemodel-v2"]["jsonFile"])) as f:
        model = json.load(f)
    targets = {}
    for ref in model["configurations"][0]["targets"]:
        with open(os.path.join(reply, ref["jsonFile"])) as f:
            t = json.load(f)
        targets[t["name"]] = t
    return targets


def _check_cmake_targets(targets: dict, expected: set):
    """Every expected target of the description is there and built exactly as it says."""
    ours = {n[len("mrcnn_"):] for n in targets if n.startswith("mrcnn_") and n[len("mrcnn_"):] in DESC.targets}
    assert ours == expected
    ids = {t["id"]: n for n, t in targets.items()}
    compiled = {}
    for name in sorted(expected):
        want = DESC.target(name)
        assert "cmake" in want.built_by, name
        t = targets["mrcnn_" + name]
        assert t["type"] == {"object": "OBJECT_LIBRARY", "static": "STATIC_LIBRARY", "shared": "SHARED_LIBRARY",
                             "executable": "EXECUTABLE"}[want.kind], name
        srcs = [s for s in t["sources"] if "compileGroupIndex" in s]
        compiled[name] = tuple(os.path.relpath(os.path.join(REPO, s["path"]), REPO) for s in srcs)
        assert compiled[name] == want.sources, name
        deps = sorted(ids[d["id"]] for d in t.get("dependencies", []) if ids.get(d["id"], "").startswith("mrcnn_"))
        assert deps == sorted("mrcnn_" + u for u in want.uses), name
        for group in t["compileGroups"]:
            flags = " ".join(f["fragment"] for f in group["compileCommandFragments"]).split()
            exact = {"CXX": DESC.exact_cxx, "CUDA": DESC.exact_cuda}[group["language"]]
            assert all(f in flags for f in exact), (name, group["language"], flags)
            assert all(f in flags for f in want.cxx_flags), (name, flags)
            defines = {d["define"] for d in group.get("defines", [])}
            assert set(want.defines) <= defines, (name, defines)
            includes = {i["path"] for i in group.get("includes", [])}
            assert {DESC.path(d) for d in want.include_dirs} <= includes, (name, includes)
        if want.export_map:
            link = " ".join(f["fragment"] for f in t["link"]["commandFragments"])
            assert f"--version-script={DESC.path(want.export_map)}" in link, name
    for name in expected:   # what the linked targets compile is what the description's uses add up to
        chain = [name]
        for n in chain:
            chain += [u for u in DESC.target(n).uses if u not in chain]
        assert sorted(s for n in chain for s in compiled[n]) == sorted(DESC.target(name).all_sources), name


def _cmake_env():
    return {k: v for k, v in os.environ.items() if k not in ("CUDACXX", "CUDAHOSTCXX", "CUDAFLAGS", "TENSORRT_ROOT")}


def test_cmake_cpu_targets(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    targets = _configure(str(tmp_path), "-DMRCNN_BUILD_TRT=OFF", env=_cmake_env())
    _check_cmake_targets(targets, {"kernels_cpu", "plugin_host", "plugin_host_test"})


def _cuda118():
    """(nvcc, host compiler) of tools/fetch_cuda118.sh's cached toolchain, if present."""
    cache = os.environ.get("MRCNN_CUDA118_CACHE", os.path.join(REPO, ".cache", "cuda118"))
    env = {}
    try:
        with open(os.path.join(cache, "env.sh")) as f:
            for line in f:
                if line.startswith("export ") and "=" in line:
                    k, v = line[len("export "):].strip().split("=", 1)
                    env[k] = v.strip('"')
    except OSError:
        return None
    nvcc = env.get("MRCNN_CUDA118_NVCC")
    return (nvcc, env.get("MRCNN_CUDA118_HOST_CXX")) if nvcc and os.path.isfile(nvcc) else None


@pytest.mark.slow
def test_cmake_cuda_and_tensorrt_targets(tmp_path):
    """With CUDA 11.8 (tools/fetch_cuda118.sh's cache) and a stand-in TensorRT (the public
    10.13.3 headers of ../shared and an empty libnvinfer.so: only configured, never linked)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    tool = _cuda118()
    if tool is None:   # fetch it (cached under .cache/cuda118; tests/test_cuda_build.py does the same)
        r = subprocess.run(["bash", "tools/fetch_cuda118.sh"], cwd=REPO, capture_output=True, text=True, timeout=1800)
        tool = _cuda118()
        if tool is None:
            msg = f"tools/fetch_cuda118.sh could not provide the CUDA 11.8 toolchain:\n{r.stderr[-2000:]}"
            if os.environ.get("CI"):
                pytest.fail(msg)
            pytest.skip(msg)
    if not os.path.isdir(SHARED_HEADERS):
        pytest.skip(f"TensorRT headers absent ({SHARED_HEADERS})")
    trt = tmp_path / "tensorrt"
    (trt / "lib").mkdir(parents=True)
    (trt / "include").symlink_to(SHARED_HEADERS)
    (trt / "lib" / "libnvinfer.so").write_bytes(b"")
    nvcc, host = tool
    args = ["-DMRCNN_WITH_CUDA=ON", f"-DCMAKE_CUDA_COMPILER={nvcc}", "-DMRCNN_CUDA_ARCHS=75;86",
            "-DCMAKE_CUDA_FLAGS=-cudart=shared",   # the 11.8 toolkit has no static CUDA runtime
            f"-DTENSORRT_ROOT={trt}", f"-DCUDAToolkit_ROOT={os.path.dirname(os.path.dirname(nvcc))}"]
    if host:
        args.append(f"-DCMAKE_CUDA_HOST_COMPILER={host}")
    targets = _configure(str(tmp_path / "build"), *args, env=_cmake_env())
    _check_cmake_targets(targets, {"kernels_cpu", "plugin_host", "plugin_host_test", "kernels_cuda",
                                   "check_cuda_kernels", "cuda_ops", "trt_adapter_test", "trt_plugins"})
    defines = {d["define"] for g in targets["mrcnn_trt_plugins"]["compileGroups"] for d in g.get("defines", [])}
    assert 'MRCNN_TRT_CUDA_ARCHS="sass:75,86 ptx:86"' in defines
    defines = {d["define"] for g in targets["mrcnn_cuda_ops"]["compileGroups"] for d in g.get("defines", [])}
    assert 'MRCNN_CAPI_CUDA_ARCHS="sass:75,86 ptx:86"' in defines


def test_cmake_arch_list(tmp_path):
    """cmake/mrcnn_cuda_archs.cmake: the one parser of MRCNN_CUDA_ARCHS and of the embedded arch tag."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    script = tmp_path / "archs.cmake"
    script.write_text(f"""
include({REPO}/cmake/mrcnn_cuda_archs.cmake)
mrcnn_cuda_architectures("61;86" "" a)
mrcnn_cuda_arch_tag("${{a}}" t)
message(STATUS "archs=${{a}} tag=${{t}}")
mrcnn_cuda_architectures("75;86" "75" a)
mrcnn_cuda_arch_tag("${{a}};90" t)
message(STATUS "archs=${{a}} tag=${{t}}")
mrcnn_cuda_architectures("75;sm_86" "" a)
""")
    r = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert "archs=61-real;86-real;86-virtual tag=sass:61,86 ptx:86" in out
    assert "archs=75-real;86-real;75-virtual tag=sass:75,86,90 ptx:75,90" in out
    assert r.returncode != 0 and "'sm_86' is not a number like 75" in out


# --------------------------------------------------------------------------- setup.py
def test_setup_py_extensions(monkeypatch, tmp_path):
    inc = tmp_path / "ort"
    inc.mkdir()
    (inc / "onnxruntime_cxx_api.h").write_text("")
    monkeypatch.setenv("MRCNN_ORT_INCLUDE", str(inc))
    exts = {e.name: e for e in native_ext.ext_modules(REPO)}
    built = {n: t for n, t in DESC.targets.items() if "setuptools" in t.built_by}
    assert sorted(exts) == sorted(t.module for t in built.values())
    for name, t in built.items():
        e = exts[t.module]
        assert tuple(e.sources) == t.all_sources, name
        assert all(f in e.extra_compile_args for f in DESC.exact_cxx + t.cxx_flags), name
        assert list(e.extra_link_args) == list(t.link_flags), name
        assert [DESC.path(d) for d in t.include_dirs] == e.include_dirs[1:], name
        assert e.export_symbols == list(t.exports), name
    # setup.py itself builds these: its ext_modules() is native_ext's
    code = (f"import sys, runpy; sys.argv = ['setup.py', '--name']; "
            f"g = runpy.run_path({os.path.join(REPO, 'setup.py')!r}); "
            f"print(sorted(e.name for e in g['ext_modules']()))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "MRCNN_ORT_INCLUDE": str(inc)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == repr(sorted(exts))


# --------------------------------------------------------------------------- mrcnn-build-plugins
def test_build_plugins_commands(tmp_path):
    t = DESC.target("trt_plugins")
    cmds = plugin_builder.compile_commands(
        DESC, nvcc="/cuda/bin/nvcc", cxx="/usr/bin/g++", host_cxx="/usr/bin/g++-11", archs=[75, 86],
        defines=['MRCNN_TRT_FAMILY="rtx"'], system_includes=["/trt/include", "/cuda/include"], obj_dir=str(tmp_path))
    srcs = [cmd[cmd.index("-c") + 1] for cmd, _, _ in cmds]
    assert srcs == [DESC.path(s) for s in t.all_sources if s.endswith(".cu")] + \
                   [DESC.path(s) for s in t.all_sources if not s.endswith(".cu")]
    for cmd, what, obj in cmds:
        src = cmd[cmd.index("-c") + 1]
        assert cmd[cmd.index("-o") + 1] == obj and obj.startswith(str(tmp_path))
        pairs = list(zip(cmd, cmd[1:]))
        assert all(("-I", DESC.path(d)) in pairs for d in t.include_dirs), cmd
        assert all(f"-D{d}" in cmd for d in t.defines)
        if src.endswith(".cu"):
            assert cmd[:3] == ["/cuda/bin/nvcc", "-ccbin", "/usr/bin/g++-11"], what
            assert all(f in cmd for f in DESC.exact_cuda), cmd
            assert "-gencode=arch=compute_75,code=sm_75" in cmd and "-gencode=arch=compute_86,code=compute_86" in cmd
        else:
            assert cmd[0] == "/usr/bin/g++", what
            assert all(f in cmd for f in DESC.exact_cxx), cmd
            assert '-DMRCNN_TRT_FAMILY="rtx"' in cmd and ("-isystem", "/trt/include") in pairs

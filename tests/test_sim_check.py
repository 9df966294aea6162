"""Every CUDA kernel runs under a GPU simulator and equals the CPU kernels bit for bit.

``tools/sim_check.sh`` (run once per session here, or read from the run that ``tools/test.sh``
starts beside the suite) builds the patched GPGPU-Sim from ``../shared/third_party/gpgpu-sim`` (cached in
``.cache/gpgpusim``), the project's CUDA code for sm_86, and runs under the simulator: the
kernel check program (three ops x float32/float16, NMS at K = 1000), the ops that use
shared memory or block synchronization with 1 warp and with several warps per block, and the C-ABI
library driven from Python like ``torch.ops.mrcnn.*`` plus the operators' edge cases. The
tests read its JSON summary. Two planted bugs (``tools/sim/mutants.py``) prove the checks
can fail: an off-by-one ROI bin index (caught by the comparison) and a write one element
past the crops (invisible to any comparison, caught by the debug C-ABI guard bands).

Skipped only when ``../shared`` (the simulator's sources) is absent. First run on a fresh
clone ~10 min on 2 cores (simulator build ~5 min), later runs ~5 min.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GSIM = Path(os.environ.get("MRCNN_SHARED", REPO.parent / "shared")) / "third_party" / "gpgpu-sim"
sys.path.insert(0, str(REPO / "tools" / "sim"))
import capi_cases  # noqa: E402  (tools/sim: the C-ABI case list)
import simrun  # noqa: E402

CHECK_CASES = {f"{op} {dt}" for op in ("PyramidROIAlign", "ProposalLayer", "DetectionLayer")
               for dt in ("fp32", "fp16")} | {"NMS K=1000", "NMS K=1000 max_keep=100"}
SYNC_CASES = {c for c in CHECK_CASES if not c.startswith("PyramidROIAlign")}
# Kernels of the project (CUB's sort kernels come on top): each must have run.
KERNELS = ("pyramid_roi_align_kernel", "proposal_keys_kernel", "proposal_decode_kernel", "proposal_output_kernel",
           "detection_refine_kernel", "detection_gather_kernel", "detection_survivor_keys_kernel",
           "detection_output_kernel", "segment_offsets_kernel", "nms_mask_kernel", "nms_reduce_kernel",
           "DeviceSegmentedRadixSortKernel")


def _need_shared():
    if not (GSIM / "build.sh").is_file():
        pytest.skip(f"the GPGPU-Sim sources are not available ({GSIM}): ../shared is absent")


def _sim_check(out: Path, *args: str):
    _need_shared()
    env = dict(os.environ, PYTHON=sys.executable)
    r = subprocess.run(["bash", "tools/sim_check.sh", "--out", str(out), *args], cwd=REPO, capture_output=True,
                       text=True, timeout=3600, env=env)
    summary = out / "sim_check.json"
    result = json.loads(summary.read_text()) if summary.is_file() else None
    return r, result


def _started_by_test_sh(out: Path, timeout_s: float = 3600):
    """The run tools/test.sh started beside the suite (MRCNN_SIM_CHECK_OUT): wait for its exit
    status file, then read its output and summary like a run of our own."""
    _need_shared()
    exit_file = Path(str(out) + ".exit")
    deadline = time.monotonic() + timeout_s
    while not exit_file.is_file():
        if time.monotonic() > deadline:
            pytest.fail(f"tools/sim_check.sh started by tools/test.sh did not finish in {timeout_s:.0f} s ({out})")
        time.sleep(5)
    read = lambda suffix: Path(str(out) + suffix).read_text(errors="replace")  # noqa: E731
    r = subprocess.CompletedProcess(["bash", "tools/sim_check.sh"], int(exit_file.read_text().strip()),
                                    read(".stdout"), read(".stderr"))
    summary = out / "sim_check.json"
    return r, (json.loads(summary.read_text()) if summary.is_file() else None)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    started = os.environ.get("MRCNN_SIM_CHECK_OUT")
    if started:
        out = Path(started)
        r, result = _started_by_test_sh(out)
    else:
        out = tmp_path_factory.mktemp("sim_check")
        r, result = _sim_check(out)
    assert result is not None, f"no summary (exit {r.returncode}):\n{r.stderr[-4000:]}"
    return r, result, out


def _cases(result, program):
    return {c["case"]: c for c in result["cases"] if c["program"] == program}


@pytest.mark.slow
def test_every_kernel_equals_the_cpu_kernels_bit_for_bit(sim):
    r, result, _ = sim
    assert r.returncode == 0 and result["ok"], r.stdout[-6000:] + r.stderr[-3000:]
    assert {p["program"]: p["exit"] for p in result["programs"]} == {
        "check": 0, "check-1warp": 0, "capi": 0}
    assert set(_cases(result, "check")) == CHECK_CASES
    assert set(_cases(result, "check-1warp")) == SYNC_CASES
    assert set(_cases(result, "capi")) == {name for name, _, _ in capi_cases.CASES}
    for c in result["cases"]:
        assert "error" not in c and c["mismatches"] == 0 and c["max_abs_diff"] == 0, c
        empty = "R = 0" in c["case"]              # no kernel at all for an empty batch
        assert (c["elements"] > 0) != (empty and c["case"].startswith("PyramidROIAlign")), c
        assert (c["instructions"] > 0) != empty and (c["launches"] > 0) != empty, c


def _launched(result, program):
    """{kernel name fragment: block sizes} of a program's launches."""
    kernels = next(p for p in result["programs"] if p["program"] == program)["kernels"]
    return {k: {t for name, sizes in kernels.items() if k in name for t in sizes} for k in KERNELS}


@pytest.mark.slow
def test_every_project_kernel_ran_in_functional_mode(sim):
    _, result, out = sim
    for k, sizes in _launched(result, "check").items():
        assert sizes, f"kernel {k} never launched under the simulator"
    capi = _launched(result, "capi")
    assert all(capi.values()), capi
    logs = "".join((out / "logs" / f"{p['program']}.log").read_text() for p in result["programs"])
    assert "libmrcnn_cuda_ops.so: debug_checks True" in logs     # the C-ABI cases ran the debug build
    assert "mode=functional simulation" in logs and "mode=performance simulation" not in logs
    assert result["totals"]["instructions"] > 100_000_000


@pytest.mark.slow
def test_block_size_variants_really_ran_with_1_and_several_warps(sim):
    _, result, _ = sim
    ours = [k for k in KERNELS if k != "DeviceSegmentedRadixSortKernel" and k != "pyramid_roi_align_kernel"]
    assert {k: s for k, s in _launched(result, "check").items() if k in ours} == {
        k: ({64} if k == "nms_mask_kernel" else {256}) for k in ours}
    assert {k: s for k, s in _launched(result, "check-1warp").items() if k in ours} == {k: {32} for k in ours}


@pytest.mark.slow
def test_summary_table(sim):
    r, result, out = sim
    md = (out / "sim_check.md").read_text()
    assert md == r.stdout[-len(md):]            # printed as written
    assert "| program | case | max abs diff | mismatches / elements | instructions | launches | seconds |" in md
    assert md.rstrip().endswith("RESULT: 0 differences")
    assert len([ln for ln in md.splitlines() if ln.startswith("| check ")]) == len(CHECK_CASES)
    assert set(result["timing_seconds"]) == {"fetch", "simulator", "build", "run", "total"}


@pytest.mark.slow
def test_planted_off_by_one_roi_bin_is_caught(sim, tmp_path):
    r, result = _sim_check(tmp_path, "--mutant", "roi_bin_off_by_one")
    assert result is not None, r.stderr[-4000:]
    assert r.returncode == 1 and not result["ok"] and result["mutant"] == "roi_bin_off_by_one"
    cases = _cases(result, "check")
    assert set(cases) == {"PyramidROIAlign fp32", "PyramidROIAlign fp16"}
    for c in cases.values():
        assert 0 < c["mismatches"] <= c["elements"] and c["max_abs_diff"] > 0, c
    assert "RESULT: DIFFERENCES OR FAILURES" in r.stdout


@pytest.mark.slow
def test_planted_out_of_bounds_write_is_caught_by_the_guard_bands(sim, tmp_path):
    r, result = _sim_check(tmp_path, "--mutant", "crop_write_past_end")
    assert result is not None, r.stderr[-4000:]
    assert r.returncode == 1 and not result["ok"]
    cases = _cases(result, "capi")
    assert cases and set(cases) == {name for name, op, _ in capi_cases.CASES if op == "PyramidROIAlign"}
    for name, c in cases.items():
        if "R = 0" in name:                   # no launch: nothing written, nothing caught
            assert "error" not in c, c
            continue
        size = 2 if "fp16" in name else 4
        assert f"output crops was written out of bounds: {size} bytes past its end" in c.get("error", ""), c


def test_unknown_mutant_is_a_usage_error():
    r = subprocess.run(["bash", "tools/sim_check.sh", "--mutant", "nope"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "unknown mutant 'nope'" in r.stderr


def test_summary_attributes_instructions_and_fails_on_a_difference(tmp_path):
    """simrun.py on a stand-in program: instruction counts per case from the simulator's
    cumulative lines; one mismatching case, or a program that dies in a case, fails."""
    prog = tmp_path / "fake.py"
    prog.write_text(
        "print('GPGPU-Sim: Done functional simulation (100 instructions simulated).')\n"
        "print('CASE a')\n"
        "print('GPGPU-Sim: Done functional simulation (250 instructions simulated).')\n"
        "print('GPGPU-Sim: Done functional simulation (400 instructions simulated).')\n"
        "print('RESULT {\"case\": \"a\", \"elements\": 8, \"mismatches\": 0, \"max_abs_diff\": 0, \"seconds\": 0.1}')\n"
        "print('CASE b')\n"
        "print('RESULT {\"case\": \"b\", \"elements\": 8, \"mismatches\": 3, \"max_abs_diff\": 0.5, \"seconds\": 0}')\n"
        "print('CASE c')\n"
        "raise SystemExit(7)\n")
    rec = tmp_path / "rec.jsonl"
    assert simrun.run("fake", str(rec), str(tmp_path / "fake.log"), [sys.executable, str(prog)]) == 7
    assert simrun.summary(str(rec), str(tmp_path / "out"), None, "run=3 total=4") == 1
    result = json.loads((tmp_path / "out" / "sim_check.json").read_text())
    a, b, c = result["cases"]
    assert (a["instructions"], a["launches"]) == (300, 2) and (b["instructions"], b["launches"]) == (0, 0)
    assert b["mismatches"] == 3 and "stopped in this case" in c["error"]
    assert result["programs"][0]["exit"] == 7 and result["totals"]["instructions"] == 400
    assert not result["ok"] and result["timing_seconds"] == {"run": 3, "total": 4}
    # the same program without the bad cases passes
    prog.write_text("print('CASE a')\nprint('GPGPU-Sim: Done functional simulation (5 instructions simulated).')\n"
                    "print('RESULT {\"case\": \"a\", \"elements\": 1, \"mismatches\": 0, \"max_abs_diff\": 0}')\n")
    rec.unlink()
    assert simrun.run("fake", str(rec), str(tmp_path / "fake.log"), [sys.executable, str(prog)]) == 0
    assert simrun.summary(str(rec), str(tmp_path / "out2"), None) == 0

"""Deliberately wrong kernel variants ("mutants") that the simulator checks must catch.

Each mutant is one textual edit of a CUDA source, applied to a copy of the sources that
tools/sim_check.sh --mutant NAME builds apart (never to the checkout). The edit must match
the source exactly once: when a kernel changes so that it no longer does, applying the
mutant fails loudly instead of silently testing the unmodified kernel.

    mutants.py list
    mutants.py show NAME                 prints: program<TAB>cases (what sim_check.sh runs)
    mutants.py apply NAME SOURCE_ROOT    edits SOURCE_ROOT/<file> in place
"""
from __future__ import annotations

import os
import sys

MUTANTS = {
    # The ROI bin index off by one along x: every crop reads its neighbour bin (the last
    # bin samples past the box). Caught by the GPU-vs-CPU comparison of the check program.
    "roi_bin_off_by_one": dict(
        file="plugins/pyramid_roi_align/pyramid_roi_align_cuda.cu",
        old="const CropAxis ax = crop_axis(b.x1, b.x2, W, P, px);",
        new="const CropAxis ax = crop_axis(b.x1, b.x2, W, P, px + 1);",
        program="check", cases="PyramidROIAlign",
        caught_by="the comparison with the CPU kernel (check_cuda_kernels)"),
    # One float written past the end of the crops, every value in bounds unchanged: the
    # simulator's memory is flat, so no comparison can see it. Caught by the guard bands of
    # the debug C-ABI library (plugins/capi/capi_checks.h).
    "crop_write_past_end": dict(
        file="plugins/pyramid_roi_align/pyramid_roi_align_cuda.cu",
        old="    crops[idx] = cuda::from_float<T>(v);\n",
        new="    crops[idx] = cuda::from_float<T>(v);\n    if (idx == total - 1) crops[idx + 1] = crops[idx];\n",
        program="capi", cases="PyramidROIAlign",
        caught_by="the guard bands of the debug C-ABI library (capi_checks.h)"),
}


def apply(name: str, root: str) -> None:
    m = MUTANTS[name]
    path = os.path.join(root, m["file"])
    with open(path) as f:
        src = f.read()
    n = src.count(m["old"])
    if n != 1:
        raise SystemExit(f"mutant {name}: the edit matches {m['file']} {n} times (want 1): update tools/sim/mutants.py")
    with open(path, "w") as f:
        f.write(src.replace(m["old"], m["new"]))


def main(argv=None) -> int:
    a = list(sys.argv[1:] if argv is None else argv)
    if a == ["list"]:
        print("\n".join(MUTANTS))
        return 0
    if len(a) >= 2 and a[1] not in MUTANTS:
        print(f"unknown mutant {a[1]!r} (known: {', '.join(MUTANTS)})", file=sys.stderr)
        return 2
    if len(a) == 2 and a[0] == "show":
        m = MUTANTS[a[1]]
        print(f"{m['program']}\t{m['cases']}")
        return 0
    if len(a) == 3 and a[0] == "apply":
        apply(a[1], a[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

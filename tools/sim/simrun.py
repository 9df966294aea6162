"""Run programs under GPGPU-Sim and summarize their GPU-vs-CPU cases (tools/sim_check.sh).

Standard library only (runs with any Python 3.8+).

The programs print, per case, ``CASE <name>`` when it starts and ``RESULT {json}`` when it
ends (keys: case, elements, mismatches, max_abs_diff, seconds; optionally error). The
simulator prints ``GPGPU-Sim: Done functional simulation (N instructions simulated).``
after every kernel, N counting from the start of the process: the instructions of a case
are the growth of N between its CASE and RESULT lines. The program record lists the kernels
launched (``pushing kernel`` lines) with their block sizes.

    simrun.py run --program NAME --records FILE --log FILE -- CMD ...
        runs CMD (in the current folder: the simulator's run folder, its environment set),
        appends one record per case and one per program to FILE (JSON lines)
    simrun.py summary --records FILE --out DIR [--mutant NAME] [--timing "step=s ..."]
        writes DIR/sim_check.json and DIR/sim_check.md, prints the table; exit 0 when every
        program exited 0 and every case matched bit for bit, else 1
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

DONE = re.compile(r"GPGPU-Sim: Done functional simulation \((\d+) instructions simulated\)")
LAUNCH = re.compile(r"GPGPU-Sim PTX: pushing kernel '([^']+)'.*blockDim = \((\d+),(\d+),(\d+)\)")


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run(program: str, records: str, log: str, cmd: list) -> int:
    """Run ``cmd``, stream its output to ``log``, append its case records; returns its exit code."""
    t0 = time.monotonic()
    insn = 0            # cumulative instructions of the process so far
    launches = 0
    case, case_insn, case_launches = None, 0, 0
    kernels = {}        # mangled kernel name -> set of block sizes it was launched with
    out = []
    with open(log, "w") as lf:
        proc = subprocess.Popen(["stdbuf", "-o0", "-e0"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
        for line in proc.stdout:
            lf.write(line)
            m = DONE.search(line)
            if m:
                insn = int(m.group(1))
                launches += 1
                continue
            m = LAUNCH.search(line)
            if m:
                threads = int(m.group(2)) * int(m.group(3)) * int(m.group(4))
                kernels.setdefault(m.group(1), set()).add(threads)
                continue
            if line.startswith("CASE "):
                case, case_insn, case_launches = line[5:].strip(), insn, launches
            elif line.startswith("RESULT "):
                try:
                    r = json.loads(line[7:])
                except ValueError:
                    r = {"case": case or "?", "error": f"unreadable result line: {line.strip()}"}
                r.update(program=program, instructions=insn - case_insn, launches=launches - case_launches)
                out.append(r)
                case = None
        rc = proc.wait()
    tail = []
    with open(log) as lf:
        tail = lf.readlines()[-15:]
    if case is not None:   # started, never finished: the program died in it
        out.append({"program": program, "case": case, "error": "no result (the program stopped in this case)",
                    "instructions": insn - case_insn, "launches": launches - case_launches})
    prog = {"program": program, "exit": rc, "seconds": round(time.monotonic() - t0, 1), "instructions": insn,
            "launches": launches, "cases": len(out), "command": " ".join(cmd), "log": log,
            "kernels": {k: sorted(v) for k, v in sorted(kernels.items())}}
    if rc != 0:
        prog["tail"] = "".join(tail)
    with open(records, "a") as f:
        for r in out:
            f.write(json.dumps({"kind": "case", **r}) + "\n")
        f.write(json.dumps({"kind": "program", **prog}) + "\n")
    return rc


def _fmt_diff(r: dict) -> str:
    if "error" in r:
        return "error"
    d = r.get("max_abs_diff", 0.0)
    if d >= 1e308:
        return "inf/NaN"
    return "0" if d == 0 else f"{d:.3g}"


def summary(records: str, out_dir: str, mutant: str | None, timing: str = "") -> int:
    cases, programs = [], []
    with open(records) as f:
        for line in f:
            r = json.loads(line)
            (cases if r.pop("kind") == "case" else programs).append(r)
    failed_cases = [c for c in cases if c.get("mismatches", 0) or "error" in c]
    failed_programs = [p for p in programs if p["exit"] != 0]
    ok = bool(cases) and not failed_cases and not failed_programs
    result = {
        "ok": ok,
        "mutant": mutant,
        "cases": cases,
        "programs": programs,
        "totals": {
            "cases": len(cases),
            "mismatching_cases": len(failed_cases),
            "instructions": sum(p["instructions"] for p in programs),
            "launches": sum(p["launches"] for p in programs),
            "seconds": round(sum(p["seconds"] for p in programs), 1),
        },
    }
    if timing:
        result["timing_seconds"] = {k: int(v) for k, v in (kv.split("=", 1) for kv in timing.split())}
    os.makedirs(out_dir, exist_ok=True)
    _atomic_write(os.path.join(out_dir, "sim_check.json"), json.dumps(result, indent=1) + "\n")

    lines = [f"# CUDA kernels under GPGPU-Sim{' (mutant: ' + mutant + ')' if mutant else ''}", "",
             "| program | case | max abs diff | mismatches / elements | instructions | launches | seconds |",
             "|---|---|---|---|---|---|---|"]
    for c in cases:
        lines.append(f"| {c['program']} | {c['case']} | {_fmt_diff(c)} | {c.get('mismatches', '-')} / "
                     f"{c.get('elements', '-')} | {c['instructions']:,} | {c['launches']} | "
                     f"{c.get('seconds', 0):.1f} |")
    t = result["totals"]
    lines += ["", f"{t['cases']} cases, {t['mismatching_cases']} with differences; "
                  f"{t['instructions']:,} PTX instructions in {t['launches']} kernel launches, "
                  f"{t['seconds']} s under the simulator."]
    if timing:
        lines += ["", "Steps (s): " + ", ".join(f"{k} {v}" for k, v in result["timing_seconds"].items())]
    for p in failed_programs:
        lines += ["", f"**{p['program']} exited {p['exit']}** (log: {p['log']}):", "```", p.get("tail", ""), "```"]
    for c in failed_cases:
        if "error" in c:
            lines += ["", f"**{c['program']} / {c['case']}**: {c['error']}"]
    if not cases:
        lines += ["", "**no case ran**"]
    lines += ["", "RESULT: " + ("0 differences" if ok else "DIFFERENCES OR FAILURES")]
    md = "\n".join(lines) + "\n"
    _atomic_write(os.path.join(out_dir, "sim_check.md"), md)
    print(md, end="")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--program", required=True)
    r.add_argument("--records", required=True)
    r.add_argument("--log", required=True)
    r.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("summary")
    s.add_argument("--records", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--mutant")
    s.add_argument("--timing", default="", help="'step=seconds ...' of the script")
    a = ap.parse_args(argv)
    if a.cmd == "run":
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not cmd:
            ap.error("run: no command")
        return run(a.program, a.records, a.log, cmd)
    return summary(a.records, a.out, a.mutant, a.timing)


if __name__ == "__main__":
    sys.exit(main())

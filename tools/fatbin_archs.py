#!/usr/bin/env python3
"""List the GPU code embedded in a binary (.so, .o, .a): SASS and PTX architectures.

For builds whose cuobjdump is missing or too old to read them (CUDA 13's
nvcc ships without cuobjdump, and CUDA 11.8's cuobjdump stops at CUDA 13 fat
binaries). Scans the file for CUDA fat binary containers (magic 0xBA55ED50,
version 1, 16-byte header; entries: u16 kind (1 PTX, 2 ELF), u16, u32 header
size, u64 payload size, u32, u32, u16 minor, u16 major, u32 arch, ...) and
reads each entry's kind and architecture; payloads (possibly compressed) are
not opened. tests/test_cuda_build.py checks it against cuobjdump on the CUDA
11.8 build.

    python tools/fatbin_archs.py build/cuda/libmrcnn_cuda_ops.so
    SASS: sm_75 sm_80 sm_86
    PTX: compute_86

Exit status 1 when the file holds no fat binary.
"""
from __future__ import annotations

import struct
import sys
from typing import List, Set, Tuple

MAGIC = 0xBA55ED50
KIND = {1: "ptx", 2: "sass"}


def entries(data: bytes) -> List[Tuple[str, int]]:
    """(kind, arch) of every entry of every fat binary container in ``data``."""
    out: List[Tuple[str, int]] = []
    magic = struct.pack("<I", MAGIC)
    pos = data.find(magic)
    while pos >= 0:
        found = _container(data, pos)
        if found is None:
            pos = data.find(magic, pos + 4)
            continue
        items, end = found
        out.extend(items)
        pos = data.find(magic, end)
    return out


def _container(data: bytes, start: int):
    if start + 16 > len(data):
        return None
    _, version, header_size, fat_size = struct.unpack_from("<IHHQ", data, start)
    end = start + header_size + fat_size
    if version != 1 or header_size != 16 or end > len(data) or fat_size < 32:
        return None
    items, p = [], start + header_size
    while p + 32 <= end:
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, p)
        if kind not in KIND or entry_header < 32 or p + entry_header + payload > end:
            return None
        arch = struct.unpack_from("<I", data, p + 28)[0]
        items.append((KIND[kind], arch))
        p += entry_header + payload
    return (items, end) if items else None


def archs(path: str) -> Tuple[Set[int], Set[int]]:
    """(SASS archs, PTX archs) found in the file."""
    with open(path, "rb") as f:
        data = f.read()
    found = entries(data)
    return {a for k, a in found if k == "sass"}, {a for k, a in found if k == "ptx"}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: fatbin_archs.py FILE (a .so, .o or .a)", file=sys.stderr)
        return 2
    sass, ptx = archs(args[0])
    if not sass and not ptx:
        print(f"{args[0]}: no CUDA fat binary found", file=sys.stderr)
        return 1
    print("SASS: " + " ".join(f"sm_{a}" for a in sorted(sass)))
    print("PTX: " + " ".join(f"compute_{a}" for a in sorted(ptx)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

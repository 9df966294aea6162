"""Dependencies between the subpackages of mrcnn_trt point one way.

Every import (module level or inside a function, absolute or relative) of
every source file is read with ``ast``; an import of a subpackage from a
subpackage that sits *below* it in :data:`LAYERS` fails the test, and so does
any cycle. The order is the one written in the README's layout table.
"""
import ast
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: bottom to top; a package may import only from packages in lower rows
#: (packages in the same row must not import each other).
LAYERS = [
    ["root"],                 # mrcnn_trt/: errors, config, fileio, cli, options, imageio, visualize
    ["plugins"],
    ["model", "data"],
    ["runtime"],
    ["export"],
    ["calib"],
    ["engine"],
    ["eval"],
    ["train"],
    ["apps", "serve"],
]
RANK = {name: i for i, row in enumerate(LAYERS) for name in row}


def package_dirs():
    text = open(os.path.join(REPO, "setup.py")).read()
    pairs = re.findall(r'"mrcnn_trt(?:\.(\w+))?": "(\w+)"', text)
    return {(sub or "root"): folder for sub, folder in pairs}


def imports_of(path, package):
    """Subpackages of mrcnn_trt imported by the file at ``path`` (in ``package``)."""
    tree = ast.parse(open(path).read(), path)
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                names = [mod] if not mod == "mrcnn_trt" else [f"mrcnn_trt.{a.name}" for a in node.names]
            else:
                base = ["mrcnn_trt"] + ([] if package == "root" else [package])
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] != "mrcnn_trt":
                continue
            sub = parts[1] if len(parts) > 1 else "root"
            found.add(sub if sub in RANK else "root")
    return found


def graph():
    edges = {}
    for sub, folder in package_dirs().items():
        root = os.path.join(REPO, folder)
        for dirpath, dirnames, files in os.walk(root):
            if sub == "root":
                dirnames[:] = []      # mrcnn_trt/ itself only (assets are not code)
            for f in files:
                if f.endswith(".py"):
                    p = os.path.join(dirpath, f)
                    for dep in imports_of(p, sub):
                        if dep != sub:
                            edges.setdefault((sub, dep), []).append(os.path.relpath(p, REPO))
    return edges


def test_every_package_has_a_layer():
    assert set(package_dirs()) <= set(RANK), set(package_dirs()) - set(RANK)


def test_imports_point_down():
    bad = [f"{a} -> {b} ({', '.join(sorted(set(files))[:3])})"
           for (a, b), files in graph().items() if RANK[b] >= RANK[a]]
    assert not bad, "imports that do not point down the layers:\n" + "\n".join(sorted(bad))


def test_no_two_way_imports():
    edges = graph()
    two_way = sorted({tuple(sorted((a, b))) for (a, b) in edges if (b, a) in edges})
    assert not two_way, two_way


@pytest.mark.parametrize("src,expected", [
    ("from mrcnn_trt.engine.runner import X", {"engine"}),
    ("from ..eval import runners", {"eval"}),
    ("from .runners import X", {"runtime"}),
    ("import mrcnn_trt.model.ops", {"model"}),
    ("from mrcnn_trt import config", {"root"}),
    ("from ..errors import UserError", {"root"}),
    ("def f():\n    from mrcnn_trt.calib.qdq import q", {"calib"}),
])
def test_import_reader(tmp_path, src, expected):
    p = tmp_path / "m.py"
    p.write_text(src)
    assert imports_of(str(p), "runtime") == expected

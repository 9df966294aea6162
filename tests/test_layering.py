"""Dependencies between the subpackages of mrcnn_trt point one way, and the
modules' own imports form no cycle.

Every import (module level or inside a function, absolute or relative) of
every source file is read with ``ast``; an import of a subpackage from a
subpackage that sits *below* it in :data:`LAYERS` fails the test, and so does
any cycle. The order is the one written in the README's layout table.

At the module level, the imports a module runs when it is imported (its top
level, class bodies and top-level ``if``/``try`` blocks, not function bodies)
make a graph between the package's modules that must be acyclic: a cycle is
printed module by module.
"""
import ast
import os
import re
import textwrap

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
    ("import mrcnn_trt.model.backends", {"model"}),
    ("from mrcnn_trt import config", {"root"}),
    ("from ..errors import UserError", {"root"}),
    ("def f():\n    from mrcnn_trt.calib.qdq import q", {"calib"}),
])
def test_import_reader(tmp_path, src, expected):
    p = tmp_path / "m.py"
    p.write_text(src)
    assert imports_of(str(p), "runtime") == expected


# ---------------------------------------------------------------------------- modules


def module_files(repo=REPO):
    """Dotted module name -> file, for every .py of the package folders (setup.py PACKAGE_DIRS)."""
    text = open(os.path.join(repo, "setup.py")).read()
    dirs = dict(re.findall(r'"(mrcnn_trt(?:\.[\w.]+)?)": "([\w/]+)"', text))
    # subpackages that setup.py finds rather than lists (the op folders, plugins/<op>/__init__.py)
    for pkg, folder in list(dirs.items()):
        root = os.path.join(repo, folder)
        for sub in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            if os.path.isfile(os.path.join(root, sub, "__init__.py")):
                dirs.setdefault(f"{pkg}.{sub}", f"{folder}/{sub}")
    out = {}
    for pkg, folder in dirs.items():
        root = os.path.join(repo, folder)
        if not os.path.isdir(root):
            continue
        for f in sorted(os.listdir(root)):
            if f.endswith(".py"):
                name = pkg if f == "__init__.py" else f"{pkg}.{f[:-3]}"
                out[name] = os.path.join(root, f)
    return out


def _run_at_import(tree):
    """The import statements a module runs when it is imported (not those in function bodies)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        else:
            todo.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)
                        or isinstance(c, ast.excepthandler))


def module_imports(name, path, modules):
    """Modules of ``modules`` (dotted names) that module ``name`` imports when it is imported."""
    tree = ast.parse(open(path).read(), path)
    is_pkg = os.path.basename(path) == "__init__.py"
    pkg = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in _run_at_import(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            continue
        if node.level:
            base = pkg.split(".")
            base = base[:len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
        found.update(subs)
        if len(subs) < len(node.names):     # names defined in ``mod`` itself
            found.add(mod)
    return {m for m in found if m in modules and m != name}


def module_graph(repo=REPO):
    modules = module_files(repo)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def import_cycles(graph):
    """The cycles of ``graph`` (one per strongly connected component), each as a list of
    modules ``[a, b, ..., a]`` following the imports."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def connect(v):                       # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                comps.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for comp in comps:                    # one concrete cycle through the component
        start = min(comp)
        path, seen = [start], {start}
        while True:
            nxt = sorted(w for w in graph[path[-1]] if w in comp)
            back = [w for w in nxt if w == start]
            if back and len(path) > 1 or nxt == [start]:
                cycles.append(path + [start])
                break
            fresh = [w for w in nxt if w not in seen]
            if not fresh:                 # walk back into the loop we found
                w = nxt[0]
                cycles.append(path[path.index(w):] + [w])
                break
            path.append(fresh[0])
            seen.add(fresh[0])
    return cycles


def test_module_imports_have_no_cycle():
    cycles = import_cycles(module_graph())
    assert not cycles, "module-level import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _tree(tmp_path, files):
    """A synthetic checkout: setup.py with PACKAGE_DIRS and the given files."""
    dirs = sorted({os.path.dirname(f) for f in files})
    pairs = ", ".join(f'"mrcnn_trt{"." + d.replace("/", ".") if d != "mrcnn_trt" else ""}": "{d}"' for d in dirs)
    (tmp_path / "setup.py").write_text(f"PACKAGE_DIRS = {{{pairs}}}\n")
    for f, text in files.items():
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text(textwrap.dedent(text))
    return str(tmp_path)


def _expect(repo, edges, cycles):
    """The synthetic tree's graph has ``edges`` and ``cycles`` (names relative to mrcnn_trt)."""
    def full(m):
        return "mrcnn_trt" + (f".{m}" if m else "")

    graph = module_graph(repo)
    for m, deps in edges.items():
        assert graph[full(m)] == {full(d) for d in deps}, m
    assert import_cycles(graph) == [[full(m) for m in c] for c in cycles]


def test_module_cycle_is_found_and_printed(tmp_path):
    repo = _tree(tmp_path, {
        "mrcnn_trt/__init__.py": "",
        "eval/__init__.py": "",
        "eval/a.py": "from .b import g\ndef f():\n    return g()\n",
        "eval/b.py": "from mrcnn_trt.eval import a\ndef g():\n    return 1\n",
        "eval/c.py": "def h():\n    from . import a   # in a function: not run at import\n",
        "eval/d.py": "from . import c\n",
    })
    _expect(repo, {"eval.a": {"eval.b"}, "eval.b": {"eval.a"}, "eval.c": set(), "eval.d": {"eval.c"}},
            [["eval.a", "eval.b", "eval.a"]])


def test_module_graph_reads_class_bodies_and_try_blocks(tmp_path):
    repo = _tree(tmp_path, {
        "mrcnn_trt/__init__.py": "from .config import Config\n",
        "mrcnn_trt/config.py": "class Config:\n    from .errors import UserError\n",
        "mrcnn_trt/errors.py": "try:\n    import mrcnn_trt.config\nexcept ImportError:\n    pass\n",
    })
    _expect(repo, {"": {"config"}, "config": {"errors"}, "errors": {"", "config"}}, [["", "config", "errors", ""]])


def test_upward_import_fails_wherever_it_is_written(tmp_path, monkeypatch):
    """An import of a higher layer fails in a function body as it does at module level."""
    for src in ("from mrcnn_trt.eval.evaluate import evaluate\n",
                "def run():\n    from mrcnn_trt.eval.evaluate import evaluate\n    return evaluate\n",
                "class R:\n    def run(self):\n        from ..eval import evaluate\n        return evaluate\n"):
        repo = _tree(tmp_path, {"mrcnn_trt/__init__.py": "", "runtime/__init__.py": "", "runtime/x.py": src,
                                "eval/__init__.py": "", "eval/evaluate.py": "def evaluate():\n    pass\n"})
        monkeypatch.setitem(globals(), "REPO", repo)
        edges = graph()
        assert ("runtime", "eval") in edges, src
        with pytest.raises(AssertionError, match="runtime -> eval"):
            test_imports_point_down()

"""Imports sit where they belong (README "How the code is written").

* Every import of a project module (``mrcnn_trt.*``, relative, the bench/ helpers) and of
  every light module (standard library, NumPy, Pillow ...) is at the top of its module.
  Inside a function only the heavy third-party modules of :data:`mrcnn_trt.lazy.HEAVY`
  may be imported, and a command's ``main`` (a CLI module, ``__main__.py``, a console
  script's module, a bench/ or tools/ script) may import the module that does its work,
  so that ``--help`` never loads torch.
* :func:`mrcnn_trt.lazy.lazy_import` is called with the literal name of a heavy module.
* Importing the command-line modules loads neither torch, nor ONNX Runtime, nor TensorRT.

Every .py file of the package folders (setup.py ``PACKAGE_DIRS``), bench/ and tools/ is
read with ``ast``; a failure lists every offender as ``file:line``.
"""
import ast
import os
import re
import subprocess
import sys

from mrcnn_trt.lazy import HEAVY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT_DIRS = ("bench", "tools")


def _setup_text(repo):
    return open(os.path.join(repo, "setup.py")).read()


def package_folders(repo=REPO):
    return sorted(set(re.findall(r'"mrcnn_trt(?:\.[\w.]+)?": "([\w/]+)"', _setup_text(repo))))


def source_files(repo=REPO):
    """Repository-relative paths of every .py file the rules apply to."""
    out = set()
    for folder in package_folders(repo) + list(SCRIPT_DIRS):
        for dirpath, dirnames, files in os.walk(os.path.join(repo, folder)):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
            out.update(os.path.relpath(os.path.join(dirpath, f), repo) for f in files if f.endswith(".py"))
    return sorted(out)


def command_files(repo=REPO):
    """Files whose ``main`` is a command: CLI modules, ``__main__.py``, console-script
    modules (setup.py), scripts (bench/, tools/, or run as ``__main__``)."""
    dirs = dict(re.findall(r'"(mrcnn_trt(?:\.[\w.]+)?)": "([\w/]+)"', _setup_text(repo)))
    out = set()
    for module in re.findall(r'"[\w-]+ = ([\w.]+):main"', _setup_text(repo)):
        pkg, _, name = module.rpartition(".")
        if pkg in dirs:
            out.add(os.path.join(dirs[pkg], name + ".py"))
    for path in source_files(repo):
        base = os.path.basename(path)
        text = open(os.path.join(repo, path)).read()
        if (base in ("cli.py", "__main__.py") or path.split(os.sep)[0] in SCRIPT_DIRS
                or re.search(r'^if __name__ == "__main__":', text, re.M)):
            out.add(path)
    return out


def imported_top(node):
    """Top-level module name an import statement imports ("" for a relative import)."""
    if isinstance(node, ast.ImportFrom):
        return "" if node.level else (node.module or "").split(".")[0]
    return node.names[0].name.split(".")[0]


def late_imports(path, source, is_command):
    """``(line, function, statement)`` of each import inside a function that the rules
    forbid."""
    tree = ast.parse(source, path)
    found = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if func is not None and isinstance(child, (ast.Import, ast.ImportFrom)):
                if imported_top(child) not in HEAVY and not (is_command and func == "main"):
                    found.append((child.lineno, func, ast.unparse(child)))
            visit(child, func)

    visit(tree, None)
    return found


def bad_lazy_imports(path, source):
    """``(line, call)`` of each ``lazy_import`` call whose name is not a literal heavy module."""
    out = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "lazy_import":
            arg = node.args[0] if node.args else None
            name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            if name is None or name.split(".")[0] not in HEAVY:
                out.append((node.lineno, ast.unparse(node)))
    return out


def test_imports_inside_functions_are_heavy_or_in_main():
    commands = command_files()
    bad = []
    for path in source_files():
        text = open(os.path.join(REPO, path)).read()
        bad += [f"{path}:{line} in {func}(): {stmt}" for line, func, stmt in late_imports(path, text, path in commands)]
    assert not bad, (f"{len(bad)} imports inside functions should be at the top of their module "
                     f"(only mrcnn_trt.lazy.HEAVY modules may be imported late; a command's main may import "
                     f"the module doing its work):\n" + "\n".join(bad))


def test_lazy_import_only_names_heavy_modules():
    bad = []
    for path in source_files():
        text = open(os.path.join(REPO, path)).read()
        if "lazy_import" in text:
            bad += [f"{path}:{line}: {call}" for line, call in bad_lazy_imports(path, text)]
    assert not bad, "lazy_import of a module that is not in mrcnn_trt.lazy.HEAVY:\n" + "\n".join(bad)


def test_reader_finds_what_the_rule_forbids():
    src = (
        "import os\n"
        "from mrcnn_trt.lazy import lazy_import\n"
        "torch = lazy_import('torch')\n"
        "np = lazy_import('numpy')\n"
        "def f():\n"
        "    import torch\n"                      # heavy: allowed
        "    import json\n"                       # light: line 7
        "    from . import sibling\n"             # project: line 8
        "    from onnx import helper\n"           # heavy: allowed
        "class C:\n"
        "    def g(self):\n"
        "        from mrcnn_trt.fileio import read_json\n"   # line 12
        "        def inner():\n"
        "            import numpy\n"              # line 14
        "def main(argv=None):\n"
        "    from mrcnn_trt.eval.evaluate import evaluate\n"  # line 16: allowed in a command only
    )
    assert [(ln, fn) for ln, fn, _ in late_imports("x.py", src, True)] == [(7, "f"), (8, "f"), (12, "g"),
                                                                         (14, "inner")]
    assert (16, "main") in [(ln, fn) for ln, fn, _ in late_imports("x.py", src, False)]
    assert bad_lazy_imports("x.py", src) == [(4, "lazy_import('numpy')")]
    assert bad_lazy_imports("x.py", "from mrcnn_trt import lazy\nm = lazy.lazy_import(name)\n") == [
        (2, "lazy.lazy_import(name)")]


def test_command_files_are_found():
    commands = command_files()
    dirs = dict(re.findall(r'"(mrcnn_trt(?:\.[\w.]+)?)": "([\w/]+)"', _setup_text(REPO)))
    scripts = re.findall(r'"[\w-]+ = ([\w.]+)\.(\w+):main"', _setup_text(REPO))
    assert len(scripts) >= 8 and {os.path.join(dirs[pkg], f"{mod}.py") for pkg, mod in scripts} <= commands
    assert {os.path.join("eval", "cli.py"), os.path.join("bench", "bench_e2e.py")} <= commands
    assert os.path.join("eval", "evaluate.py") not in commands
    assert os.path.join("bench", "benchlib.py") in source_files()


def test_cli_modules_import_without_heavy_modules():
    """Importing every command-line module (not running it) loads no torch, ONNX Runtime or
    TensorRT (tests/test_cli_help.py runs each console script's --help the same way)."""
    dirs = dict(re.findall(r'"(mrcnn_trt(?:\.[\w.]+)?)": "([\w/]+)"', _setup_text(REPO)))
    modules = set(re.findall(r'"[\w-]+ = ([\w.]+):main"', _setup_text(REPO)))
    for pkg, folder in dirs.items():
        if os.path.isfile(os.path.join(REPO, folder, "cli.py")):
            modules.add(f"{pkg}.cli")
    code = ("import sys\n" + "".join(f"import {m}\n" for m in sorted(modules)) +
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', 'tritonclient'))\n"
            "print(' '.join(heavy))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing {sorted(modules)} loaded: {r.stdout.strip()}"

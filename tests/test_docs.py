"""Every ``mrcnn-*`` command shown in the docs (Markdown code blocks, the CLIs' own
usage examples) parses with the current command-line interfaces."""
import glob
import importlib
import os
import re
import shlex

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def console_scripts():
    text = open(os.path.join(REPO, "setup.py")).read()
    return dict(re.findall(r'"(mrcnn-[a-z-]+) = ([\w.]+):main"', text))


def doc_files():
    files = glob.glob(os.path.join(REPO, "*.md")) + glob.glob(os.path.join(REPO, "*", "*.md"))
    return sorted(f for f in files if "/.venv/" not in f and "/.cache/" not in f)


def _commands_in(lines, where):
    """``(where, argv)`` of each ``mrcnn-*`` command, continuation lines joined."""
    out, buf, start = [], "", 0
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("$ "):
            s = s[2:]
        if buf:
            buf += " " + s
        elif re.match(r"^(\w+=\S+\s+)*mrcnn-[a-z-]+(\s|$)", s):
            buf, start = s, n
        else:
            continue
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        lex = shlex.shlex(buf, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        lex.commenters = "#"
        tokens, argv = list(lex), []
        for tok in tokens + [";"]:                       # split chains: a && b; c | d
            if tok and set(tok) <= set(";&|"):
                while argv and re.match(r"^\w+=", argv[0]):    # VAR=value prefixes
                    argv = argv[1:]
                if argv and argv[0].startswith("mrcnn-"):
                    out.append((f"{where}:{start}", argv))
                argv = []
            else:
                argv.append(tok)
        buf = ""
    return out


def documented_commands():
    found = []
    for f in doc_files():
        in_block, block = False, []
        for line in open(f).read().splitlines() + [""]:
            if line.strip().startswith("```"):
                if in_block:
                    found += _commands_in(block, os.path.relpath(f, REPO))
                in_block, block = not in_block, []
            elif in_block:
                block.append(line)
    for name, module in console_scripts().items():
        doc = importlib.import_module(module).__doc__ or ""
        found += _commands_in(doc.splitlines(), module)
    return found


COMMANDS = documented_commands()


def test_docs_show_commands():
    names = {argv[0] for _, argv in COMMANDS}
    assert {"mrcnn-export", "mrcnn-build-engine", "mrcnn-eval", "mrcnn-calibrate", "mrcnn-demo", "mrcnn-train",
            "mrcnn-make-dataset"} <= names


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, argv):
    scripts = console_scripts()
    assert argv[0] in scripts, f"{where}: unknown command {argv[0]}"
    parser = importlib.import_module(scripts[argv[0]]).build_parser()
    args = [a for a in argv[1:] if a != "..."]
    try:
        parser.parse_args(args)
    except SystemExit as e:
        pytest.fail(f"{where}: `{' '.join(argv)}` does not parse (exit {e.code})")


def test_parse_failure_is_detected():
    """The check itself fails on an option that does not exist."""
    (where, argv), = _commands_in(["mrcnn-eval --model m.onnx --data coco/ ..."], "x")
    parser = importlib.import_module(console_scripts()["mrcnn-eval"]).build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(argv[1:])


#: options that name a file or folder a command writes (besides -o/--out)
WRITTEN_OPTIONS = {"mrcnn-train": ("export",), "mrcnn-build-engine": ("calib_cache", "timing_cache")}


def written_paths(argv):
    """Paths a documented command writes: its -o/--out (or the default it falls back to)
    and the other options that name outputs. Commands whose output is not a path
    (mrcnn-triton serve / infer without -o) give none."""
    scripts = console_scripts()
    parser = importlib.import_module(scripts[argv[0]]).build_parser()
    args = parser.parse_args([a for a in argv[1:] if a != "..."])
    paths = []
    out = getattr(args, "out", None)
    if out is None and argv[0] in ("mrcnn-build-engine", "mrcnn-calibrate"):
        out = getattr(args, "onnx", None) or getattr(args, "model", None)   # default: beside the input
    if argv[0] == "mrcnn-build-plugins":
        out = None          # plugins/lib/<family>/ of the package (ignored by git) unless -o
    if out is not None:
        paths.append(out)
    for name in WRITTEN_OPTIONS.get(argv[0], ()):
        if getattr(args, name, None):
            paths.append(getattr(args, name))
    return [str(p) for p in paths]


DOC_COMMANDS = [(w, a) for w, a in COMMANDS if ".md:" in w]   # the Markdown docs (not the --help examples)


@pytest.mark.parametrize("where,argv", DOC_COMMANDS, ids=[w for w, _ in DOC_COMMANDS])
def test_documented_command_writes_under_runs(where, argv):
    """Every command the Markdown docs show writes under runs/ (ignored by git): a clone stays clean."""
    for path in written_paths(argv):
        var = re.fullmatch(r"\$\{?(\w+)\}?(/.*)?", path)
        if var:   # a shell variable set in the same document: DATA=runs/shapes-data
            text = open(os.path.join(REPO, where.rsplit(":", 1)[0])).read()
            value = re.search(rf"^{var.group(1)}=(\S+)", text, re.M)
            path = (value.group(1) if value else path) + (var.group(2) or "")
        assert path.startswith("runs/") or path == "runs", f"{where}: `{' '.join(argv)}` writes {path}"


def test_default_outputs_are_under_runs():
    """Commands run without -o write under runs/ too (mrcnn-export, mrcnn-eval, mrcnn-quickstart)."""
    assert written_paths(["mrcnn-export"]) == ["runs/model.onnx"]
    assert written_paths(["mrcnn-eval", "--dataset", "coco", "--data-root", "x"]) == ["runs/eval"]
    assert written_paths(["mrcnn-quickstart"]) == ["runs/quickstart"]
    assert written_paths(["mrcnn-calibrate", "runs/m.onnx", "--fp16"]) == ["runs/m.onnx"]   # beside the input
    with pytest.raises(AssertionError):   # the check itself fails on a path outside runs/
        test_documented_command_writes_under_runs("x", ["mrcnn-export", "-o", "model.onnx"])

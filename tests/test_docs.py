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
        argv = shlex.split(buf, comments=True)
        while argv and re.match(r"^\w+=", argv[0]):    # VAR=value prefixes
            argv = argv[1:]
        out.append((f"{where}:{start}", argv))
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

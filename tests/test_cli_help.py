"""Every console script answers --help without importing torch, onnxruntime or tensorrt."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def console_scripts():
    text = open(os.path.join(REPO, "setup.py")).read()
    return re.findall(r'"(mrcnn-[a-z-]+) = ([\w.]+):main"', text)


@pytest.mark.parametrize("name,module", console_scripts())
def test_help_is_fast_and_lazy(name, module):
    code = (
        "import sys\n"
        f"from {module} import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout and name in r.stdout


def test_all_user_commands_are_declared():
    names = {n for n, _ in console_scripts()}
    assert {"mrcnn-export", "mrcnn-build-engine", "mrcnn-eval", "mrcnn-demo", "mrcnn-train", "mrcnn-calibrate",
            "mrcnn-make-dataset", "mrcnn-quickstart"} <= names

"""LAB.md: every "try it now" block runs, in order, in a fresh folder, with fewer images
and steps (that every LAB.md command parses is checked with the other docs in test_docs.py)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "# try it now: synthetic stand-in"


def bash_blocks():
    with open(os.path.join(REPO, "LAB.md")) as f:
        return re.findall(r"^```bash\n(.*?)^```", f.read(), re.S | re.M)


def test_lab_covers_the_four_tasks_and_the_readme_links_it():
    with open(os.path.join(REPO, "LAB.md")) as f:
        text = f.read()
    for n, words in ((1, "demo"), (2, "COCO val"), (3, "Cityscapes, inference"), (4, "Fine-tuning")):
        assert re.search(rf"^## {n}\. .*{words}", text, re.M), n
    tried = [b for b in bash_blocks() if b.startswith(MARK)]
    assert len(tried) == 4
    with open(os.path.join(REPO, "README.md")) as f:
        assert "(LAB.md)" in f.read()


def _git(cwd, *args):
    return subprocess.run(["git", "-c", "core.quotepath=off", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


def _clone_of_the_checkout(dest):
    """The tracked files of this checkout (as they are now) in a fresh git repository, all
    staged: `git status --porcelain` there lists anything a command adds outside .gitignore."""
    for rel in _git(REPO, "ls-files", "-z").split("\0"):
        src = os.path.join(REPO, rel)
        if rel and os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    return _git(dest, "status", "--porcelain")


@pytest.mark.slow
def test_try_it_now_blocks_run(tmp_path):
    """LAB.md followed from a clone: every "try it now" block runs (fewer images and steps),
    prints no warning, and writes nothing outside runs/ (`git status` of the clone and of
    this checkout unchanged: nothing lands in the package folders either)."""
    clone = tmp_path / "clone"
    before = _clone_of_the_checkout(clone)
    repo_before = _git(REPO, "status", "--porcelain")
    blocks = [b for b in bash_blocks() if b.startswith(MARK)]
    script = "set -euo pipefail\n" + "\n".join(blocks)
    script, n_sizes = re.subn(r"--num-images \d+", "--num-images 3", script)
    script, n_steps = re.subn(r"--steps-per-epoch \d+", "--steps-per-epoch 2", script)
    assert n_sizes >= 4 and n_steps == 1
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "KMP_"))}
    env.update(MRCNN_PROGRESS="0", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, (r.stdout[-4000:], r.stderr[-4000:])
    lab = clone / "runs" / "lab"
    assert len(list((lab / "demo").glob("*.png"))) == 3 and (lab / "demo" / "summary.json").is_file()
    for run in ("coco_val", "cs_eval", "cs_ft_eval"):
        for name in ("metrics.json", "report.html", "report.md", "report.json"):
            assert (lab / run / name).is_file(), (run, name)
    assert (lab / "cs_ft.pth").is_file() and (lab / "cs_ft.onnx.json").is_file()
    assert "fresh:" in r.stdout        # fine-tuning init reports the classes that start fresh
    warnings = [ln for ln in (r.stdout + r.stderr).splitlines() if "warning" in ln.lower()]
    assert not warnings, warnings
    assert _git(clone, "status", "--porcelain") == before      # nothing written outside runs/
    assert _git(REPO, "status", "--porcelain") == repo_before   # nor into this checkout (the package folders)

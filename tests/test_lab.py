"""LAB.md: every "try it now" block runs, in order, in a fresh folder, with fewer images
and steps (that every LAB.md command parses is checked with the other docs in test_docs.py)."""
import os
import re
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


@pytest.mark.slow
def test_try_it_now_blocks_run(tmp_path):
    blocks = [b for b in bash_blocks() if b.startswith(MARK)]
    script = "set -euo pipefail\n" + "\n".join(blocks)
    script, n_sizes = re.subn(r"--num-images \d+", "--num-images 3", script)
    script, n_steps = re.subn(r"--steps-per-epoch \d+", "--steps-per-epoch 2", script)
    assert n_sizes >= 4 and n_steps == 1
    env = dict(os.environ, MRCNN_PROGRESS="0", OMP_NUM_THREADS="2",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, (r.stdout[-4000:], r.stderr[-4000:])
    lab = tmp_path / "runs" / "lab"
    assert len(list((lab / "demo").glob("*.png"))) == 3 and (lab / "demo" / "summary.json").is_file()
    for run in ("coco_val", "cs_eval", "cs_ft_eval"):
        for name in ("metrics.json", "report.html", "report.md", "report.json"):
            assert (lab / run / name).is_file(), (run, name)
    assert (lab / "cs_ft.pth").is_file() and (lab / "cs_ft.onnx.json").is_file()
    assert "fresh:" in r.stdout        # fine-tuning init reports the classes that start fresh

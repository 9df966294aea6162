"""Option groups (mrcnn_trt/options.py): each adds its options and parses them into
what the API takes, with one-line errors; the commands are built from them."""
import argparse
import os
import subprocess
import sys

import pytest

from mrcnn_trt import distributed, options
from mrcnn_trt.config import Config
from mrcnn_trt.errors import UserError


def parsed(groups, argv):
    p = argparse.ArgumentParser(prog="t")
    options.add_groups(p, *groups)
    return p.parse_args(argv)


def test_input_files_are_returned_or_refused_in_one_line(tmp_path):
    model, weights = options.ModelOptions(), options.WeightsOptions()
    present = tmp_path / "m.onnx"
    present.write_bytes(b"x")
    args = parsed([model, weights], ["--engine", str(present)])   # the alias lands in --model
    assert model.parse(args) == str(present) and weights.parse(args) is None
    args = parsed([model, weights], ["--weights", str(tmp_path / "w.pth")])
    assert model.parse(args) is None
    with pytest.raises(UserError, match=r"^weights file not found: .*w\.pth$"):
        weights.parse(args)


def test_dataset_group_returns_a_spec_and_checks_root_and_images(tmp_path):
    data = options.DatasetOptions()
    args = parsed([data], ["--dataset", "coco", "--data-root", str(tmp_path), "--images", str(tmp_path)])
    spec = data.parse(args)
    assert spec == options.DatasetSpec("coco", str(tmp_path), "val", str(tmp_path))
    assert dict(spec.open_options) == {"image_dir": str(tmp_path)}
    assert dict(options.DatasetSpec("coco", "r", "val").open_options) == {}
    with pytest.raises(UserError, match="data root not found"):
        data.parse(parsed([data], ["--dataset", "coco", "--data-root", str(tmp_path / "no")]))
    with pytest.raises(UserError, match="--images is for COCO data"):
        data.parse(parsed([data], ["--dataset", "cityscapes", "--data-root", str(tmp_path), "--images", "x"]))
    optional = options.DatasetOptions(required=False)
    assert optional.parse(parsed([optional], [])) is None


def test_config_group_reads_presets_files_and_inline_json(tmp_path):
    plain, inline = options.ConfigOptions(), options.ConfigOptions(inline_json=True)
    assert plain.parse(parsed([plain], [])) is None
    cfg = plain.parse(parsed([plain], ["--config", "shapes"]))
    assert isinstance(cfg, Config) and cfg.NAME == "shapes"
    cfg = inline.parse(parsed([inline], ["--config", ' {"preset": "shapes", "LEARNING_RATE": 0.02}']))
    assert cfg.NAME == "shapes" and cfg.LEARNING_RATE == 0.02
    with pytest.raises(UserError, match="--config: invalid JSON"):
        inline.parse(parsed([inline], ["--config", "{nope"]))
    with pytest.raises(UserError, match="unknown config"):   # inline JSON only where the tool takes it
        plain.parse(parsed([plain], ["--config", '{"preset": "shapes"}']))


def test_file_output_is_checked(tmp_path):
    out = options.OutputOptions(what="file", example="model.onnx", noun="model file")
    with pytest.raises(UserError) as e:
        out.parse(parsed([out], ["-o", str(tmp_path)]))
    assert str(e.value) == f"-o {tmp_path} is a folder; give the model file, e.g. {tmp_path / 'model.onnx'}"
    assert out.parse(parsed([out], ["--output", str(tmp_path / "a.onnx")])) == str(tmp_path / "a.onnx")
    if os.geteuid() != 0:   # root may write anywhere
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            with pytest.raises(UserError, match="output folder is not writable"):
                out.check(str(locked / "a.onnx"))
        finally:
            locked.chmod(0o755)


def test_output_folder_is_created_locked_and_removed_when_the_run_fails_empty(tmp_path):
    out = options.OutputOptions(default=str(tmp_path / "run"), lock="mrcnn-x")
    folder = out.parse(parsed([out], []))
    with out.open(folder) as f:
        lock = os.path.join(f, options.lock_name("mrcnn-x"))
        assert open(lock).read() == f"{os.getpid()}\n"
        with pytest.raises(UserError, match=rf"in use by another mrcnn-x \(pid {os.getpid()}\)"):
            with out.open(folder):
                pass
        # another process is refused too (flock, not a file that may be stale)
        code = (f"import sys; from mrcnn_trt.options import locked_output\n"
                f"try:\n    locked_output({folder!r}, 'mrcnn-x').__enter__()\n"
                f"except Exception as e:\n    print(e); sys.exit(7)")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 7 and "in use by another mrcnn-x" in r.stdout
    assert os.listdir(folder) == []            # the lock file goes with the run
    with pytest.raises(RuntimeError):
        with out.open(str(tmp_path / "new" / "deep")):
            raise RuntimeError("the run failed")
    assert not os.path.exists(tmp_path / "new")   # nothing half-made is left


def test_value_groups_return_their_option():
    groups = [options.ThreadOptions(default=None), options.DeviceOptions(), options.BatchOptions(default=None),
              options.LimitOptions(), options.MinConfidenceOptions()]
    args = parsed(groups, ["--threads", "3", "--device", "1", "--limit", "5", "--min-confidence", "0"])
    assert [g.parse(args) for g in groups] == [3, "cuda:1", None, 5, 0.0]
    calib = options.CalibrationOptions(default_count=7)
    assert calib.parse(parsed([calib], ["--calib-images", "c"])) == options.CalibrationSpec("c", 7, 0)


def test_distributed_launch_runs_one_process_or_relaunches(monkeypatch):
    dist = options.DistributedOptions("images")
    for name in distributed.LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    calls = []
    args = parsed([dist], [])
    code = dist.launch(args, "mrcnn_trt.eval", [], lambda ctx: calls.append(("body", ctx.enabled)) or 5,
                       prepare=lambda: calls.append(("prepare",)))
    assert code == 5 and calls == [("prepare",), ("body", False)]
    monkeypatch.setattr(distributed, "relaunch", lambda module, argv, n: calls.append((module, argv, n)) or 9)
    argv = ["--nproc", "2", "--dist-timeout", "5"]
    assert dist.launch(parsed([dist], argv), "mrcnn_trt.eval", argv, lambda ctx: 0) == 9
    assert calls[-1] == ("mrcnn_trt.eval", argv, 2)   # no prepare, no body in the launching process


@pytest.mark.parametrize("code, intact", [(0, True), (4, True), (1, True), (5, False), (130, False),
                                         (143, False), (None, False)])
def test_distributed_launch_leaves_a_broken_job_without_clean_up(monkeypatch, code, intact):
    """A run that finished (also one that skipped unreadable inputs: exit 4) leaves the job
    as usual; an interrupt, a lost peer or an escaping error leaves it broken."""
    dist = options.DistributedOptions("images")
    for name in distributed.LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    seen = []
    monkeypatch.setattr(distributed, "shutdown", lambda ended_well: seen.append(ended_well))

    def body(ctx):
        if code is None:
            raise RuntimeError("a bug")
        return code

    if code is None:
        with pytest.raises(RuntimeError):
            dist.launch(parsed([dist], []), "mrcnn_trt.eval", [], body)
    else:
        assert dist.launch(parsed([dist], []), "mrcnn_trt.eval", [], body) == code
    assert seen == [intact]


@pytest.mark.parametrize("module", ["mrcnn_trt.eval.cli", "mrcnn_trt.train.cli", "mrcnn_trt.export.cli",
                                    "mrcnn_trt.engine.cli", "mrcnn_trt.calib.cli", "mrcnn_trt.data.cli",
                                    "mrcnn_trt.apps.demo", "mrcnn_trt.apps.quickstart"])
def test_commands_take_the_shared_options_from_the_groups(module):
    """The shared flags of every command come from options.py: same strings, types and defaults."""
    import importlib

    p = importlib.import_module(module).build_parser()
    shared = {a.option_strings[0]: a for a in p._actions if a.option_strings}
    reference = argparse.ArgumentParser()
    options.add_groups(reference, options.ThreadOptions(), options.DeviceOptions(), options.LimitOptions())
    for ref in reference._actions:
        if ref.option_strings and ref.option_strings[0] in shared:
            got = shared[ref.option_strings[0]]
            assert got.option_strings == ref.option_strings and got.type is ref.type, module
    out = shared.get("-o")
    assert out is not None and out.option_strings == ["-o", "--out", "--output"], module

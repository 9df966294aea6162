"""One rank of ``mrcnn-train`` / ``mrcnn-eval`` for tests/test_distributed.py.

    python tests/dist_worker.py train|eval ARGS...          (under torchrun, or with RANK/WORLD_SIZE/... set)

With ``DIST_TEST_RECORD=FILE`` every checkpoint, ``losses.json`` and
``losses.png`` write of the training loop is appended to FILE as one JSON line
``{"rank": R, "file": NAME}`` before it happens, so a test can tell which ranks
wrote what.
"""
import json
import os
import sys


def _recording(fn, record):
    def wrapper(path, *a, **kw):
        with open(record, "a") as f:
            f.write(json.dumps({"rank": int(os.environ.get("RANK", "0")), "file": os.path.basename(path)}) + "\n")
        return fn(path, *a, **kw)

    return wrapper


def main() -> int:
    what, argv = sys.argv[1], sys.argv[2:]
    record = os.environ.get("DIST_TEST_RECORD")
    if record:
        import mrcnn_trt.train.hooks as loop   # the hooks write the files

        for name in ("save_checkpoint", "write_json_atomic"):
            setattr(loop, name, _recording(getattr(loop, name), record))
        plot = loop.plot_losses
        loop.plot_losses = lambda history, path: _recording(lambda p: plot(history, p), record)(path)
    if what == "train":
        from mrcnn_trt.train.cli import main as run
    else:
        from mrcnn_trt.eval.cli import main as run
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())

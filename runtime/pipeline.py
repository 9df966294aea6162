"""Overlap the stages of a batch loop: while the network runs on one batch, the
next batch is read and molded and the previous one is unmolded, encoded and
written. Used by the evaluation loop (``mrcnn_trt.eval.evaluate``), ``mrcnn-demo``
and calibration.

    run_pipelined(batches, compute=lambda b: runner(b.images, b.windows),
                  finish=lambda b, out: evaluator.process(ids(b), unmold_outputs(out, b.infos)))

Three stages, one thread each, joined by bounded queues (``depth`` items each,
so at most ``2 * depth + 3`` items exist at once: memory stays flat):

* produce: iterating ``source`` (image decoding + molding: Pillow and NumPy
  release the GIL for the pixel work);
* compute: ``compute(item)`` in the calling thread (the network: ONNX Runtime,
  TensorRT and PyTorch release the GIL while they run);
* finish: ``finish(item, result)`` in a worker thread, strictly in order, so
  whatever it feeds (an evaluator, files) sees exactly the serial sequence.

The first exception of any stage stops the others and is raised in the caller.
Ctrl-C (KeyboardInterrupt in the caller) stops reading and computing; the
items already computed are still finished before it propagates, so "what was
processed" is consistent. ``depth=0`` runs the same loop serially in the
calling thread (the reference the pipelined loop is tested against).
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, List, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()


def _put(q: "queue.Queue", item, stop: threading.Event) -> bool:
    """Put unless ``stop`` is set first (False then)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def prefetch(source: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``source`` in a background thread, up to ``depth`` items ahead
    (``depth=0``: plainly). Exceptions of the source are raised here, at the
    item where they happened; closing the generator stops the thread."""
    if depth < 1:
        yield from source
        return
    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()
    error: List[BaseException] = []

    def produce():
        try:
            for item in source:
                if not _put(q, item, stop):
                    return
        except BaseException as e:   # noqa: BLE001 - re-raised in the consumer
            error.append(e)
        _put(q, _END, stop)

    t = threading.Thread(target=produce, name="mrcnn-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            yield item
        if error:
            raise error[0]
    finally:
        stop.set()
        t.join()


def run_pipelined(source: Iterable[T], compute: Callable[[T], R], finish: Callable[[T, R], None],
                  depth: int = 2) -> None:
    """Run ``finish(item, compute(item))`` for every item of ``source`` with the
    three stages overlapped (see the module docstring); ``depth=0``: serially."""
    if depth < 1:
        for item in source:
            finish(item, compute(item))
        return
    done_q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()
    errors: List[BaseException] = []

    def finisher():
        while True:
            got = done_q.get()
            if got is _END:
                return
            if errors:
                continue   # drain: the caller is stopping
            try:
                finish(*got)
            except BaseException as e:   # noqa: BLE001 - re-raised in the caller
                errors.append(e)
                stop.set()

    worker = threading.Thread(target=finisher, name="mrcnn-finish", daemon=True)
    worker.start()
    items = prefetch(source, depth)
    try:
        for item in items:
            if stop.is_set():
                break
            result = compute(item)
            if not _put(done_q, (item, result), stop):
                break
    finally:
        items.close()
        done_q.put(_END)   # the finisher drains the queue, so this returns
        worker.join()
    if errors:
        raise errors[0]

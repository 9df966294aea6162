"""``mrcnn-demo``: run the model on images and write JSON + PNG per image.

    mrcnn-demo --weights mask_rcnn_coco.pth photos/ -o demo_out
    mrcnn-demo IMAGE.jpg -o out            # the small shipped shapes model

For each image: ``<name>.json`` (boxes in original-image pixels as
[y1, x1, y2, x2], class ids and names, scores, RLE masks from pycocotools;
the format of :mod:`mrcnn_trt.runtime.results`) and ``<name>.png`` (masks,
boxes and labels drawn). Results keep the inputs' relative paths, so
``a/x.jpg`` and ``b/x.jpg`` give ``a/x.json`` and ``b/x.json`` (and ``x.jpg``
+ ``x.png`` give ``x_jpg.json`` and ``x_png.json``). ``summary.json`` lists
every image, including the ones that could not be read.

Exit codes: 0 all images processed, 4 some images could not be read (left
out, listed in summary.json), 1 none could be read, 2 a user error.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

from PIL import Image, PngImagePlugin

from mrcnn_trt import options
from mrcnn_trt.cli import progress, run_main
from mrcnn_trt.errors import EXIT_INPUTS_SKIPPED, EXIT_NOTHING_DONE, UserError
from mrcnn_trt.data.synthetic import is_synthetic_image
from mrcnn_trt.fileio import atomic_path, check_regular_file, output_folder, refuse_overwriting_inputs, write_json_atomic
from mrcnn_trt.imageio import IMAGE_EXTENSIONS
from mrcnn_trt.model.molding import load_image
from mrcnn_trt.runtime.pipeline import run_pipelined
from mrcnn_trt.runtime.registry import open_runner
from mrcnn_trt.runtime.results import result_to_json
from mrcnn_trt.runtime.runners import detect
from mrcnn_trt.visualize import draw_detections


def collect_images(inputs: Sequence[str]) -> List[str]:
    """Image files named or found (not recursively) in the folders named."""
    files = []
    for p in inputs:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
            if not found:
                print(f"warning: no images in folder {p}", file=sys.stderr)
            files += found
        elif os.path.exists(p):
            files.append(p)
        else:
            print(f"warning: skipping {p}: no such file", file=sys.stderr)
    return files


def output_stems(files: Sequence[str]) -> Dict[str, str]:
    """A distinct output name (without extension) per input file: its path
    relative to the inputs' common folder, without the extension; the extension
    is kept (``x_jpg``) where two inputs would otherwise collide."""
    absolute = [os.path.abspath(f) for f in files]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute]) if absolute else ""
    rel = {f: os.path.relpath(a, common) for f, a in zip(files, absolute)}
    stems = {f: os.path.splitext(r)[0] for f, r in rel.items()}
    counts: Dict[str, int] = {}
    for s in stems.values():
        counts[s] = counts.get(s, 0) + 1
    for f, s in stems.items():
        if counts[s] > 1:
            root, ext = os.path.splitext(rel[f])
            stems[f] = root + "_" + ext.lstrip(".").lower()
    return stems


#: PNG "Software" text of every drawing, so a rerun replaces its own drawings and nothing else
DRAWING_MARK = "mrcnn-demo"


def drawing_mark():
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", DRAWING_MARK)
    return info


def is_drawing(path: str) -> bool:
    """True for a PNG written by mrcnn-demo (reads the header only)."""
    try:
        with Image.open(path) as im:
            return im.info.get("Software") == DRAWING_MARK
    except Exception:  # noqa: BLE001 - unreadable: not ours
        return False


def check_outputs(files: Sequence[str], stems: Dict[str, str], out: str) -> None:
    """Before any work: no result may replace an input (``mrcnn-demo photos -o
    photos`` with ``x.png`` among the photos), and an existing ``.png`` is only
    replaced when it is a drawing of an earlier run."""
    outputs = [os.path.join(out, "summary.json")]
    for f in files:
        outputs += [os.path.join(out, stems[f] + ".json"), os.path.join(out, stems[f] + ".png")]
    refuse_overwriting_inputs(outputs, files, hint="choose another output folder (-o)")
    for o in outputs[2::2]:
        if os.path.lexists(o):
            check_regular_file(o, what="existing output")
            if not is_drawing(o):
                raise UserError(f"{o} exists and is not a drawing of mrcnn-demo: not replaced; choose another "
                                f"output folder (-o)")


#: mrcnn-demo's option groups after the images, in the order of --help (main reads their values from args)
GROUPS = (options.WeightsOptions(), options.ConfigOptions(), options.OutputOptions(required=True),
          options.MinConfidenceOptions(), options.BatchOptions(help="images per forward pass (default 1)"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files and/or folders of images")
    options.add_groups(p, *GROUPS)
    p.add_argument("--ops", choices=["native", "torch", "cpu"], default="native",
                   help="custom-op implementation: native (default; torch.ops.mrcnn.*: C++ kernels on the CPU, CUDA "
                        "kernels on a GPU), torch (PyTorch reference) or cpu (C++ kernels)")
    return options.add_groups(p, options.DeviceOptions(), options.ThreadOptions(default=None))


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    files = collect_images(args.images)
    if not files:
        raise UserError("no input images found")

    # --threads, else one per available core (mrcnn_trt.threads)
    runner = open_runner(args.weights, "torch", threads=args.threads, config=args.config, ops=args.ops,
                         device=args.device)
    if args.min_confidence is not None:
        runner.set_min_confidence(args.min_confidence)
    cfg = runner.config
    if args.weights is None:

        if not all(is_synthetic_image(f) for f in files):
            print("note: this is the small shipped shapes model: it only knows circles, squares and triangles; "
                  "pass real weights with --weights mask_rcnn_coco.pth", file=sys.stderr)
    stems = output_stems(files)
    check_outputs(files, stems, args.out)
    summary, counts = [], {"ok": 0, "failed": 0}

    def read(start):   # stage 1 (a reader thread): decode the next batch
        images, names, failed = [], [], []
        for f in files[start:start + args.batch]:
            try:
                images.append(load_image(f))
                names.append(f)
            except (ValueError, UserError) as e:
                print(f"warning: {e}; skipped", file=sys.stderr)
                failed.append({"image": f, "error": str(e)})
        return images, names, failed

    def network(item):   # stage 2 (this thread)
        if not item[0]:
            return []
        return detect(runner, item[0])

    def write(item, results):   # stage 3 (a writer thread, in input order): JSON + PNG
        images, names, failed = item
        summary.extend(failed)
        counts["failed"] += len(failed)
        for f, im, r in zip(names, images, results):
            stem = stems[f]
            js = result_to_json(r, cfg.CLASS_NAMES, f)
            write_json_atomic(os.path.join(args.out, stem + ".json"), js)
            with atomic_path(os.path.join(args.out, stem + ".png")) as tmp:
                draw_detections(im, r, cfg.CLASS_NAMES).save(tmp, format="PNG", pnginfo=drawing_mark())
            summary.append({"image": f, "json": stem + ".json", "png": stem + ".png",
                            "detections": len(js["detections"])})
            counts["ok"] += 1

    with output_folder(args.out):
        bar = progress(range(0, len(files), args.batch), total=(len(files) + args.batch - 1) // args.batch,
                       desc="demo", unit="batch")
        try:
            run_pipelined((read(start) for start in bar), network, write)
        finally:   # also after Ctrl-C: what was written is listed (nothing at all: no folder is left)
            if summary:
                write_json_atomic(os.path.join(args.out, "summary.json"),
                                  {"processed": counts["ok"], "failed": counts["failed"], "images": summary})
    ok, failed = counts["ok"], counts["failed"]
    print(f"{ok}/{len(files)} images processed; results in {args.out}")
    if not ok:
        return EXIT_NOTHING_DONE
    return EXIT_INPUTS_SKIPPED if failed else 0


if __name__ == "__main__":
    sys.exit(main())

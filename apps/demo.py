"""``mrcnn-demo``: run the model on images and write JSON + PNG per image.

    mrcnn-demo --weights mask_rcnn_coco.pth photos/ --out demo_out
    mrcnn-demo IMAGE.jpg --out out            # the small shipped shapes model

For each image: ``<name>.json`` (boxes in original-image pixels as
[y1, x1, y2, x2], class ids and names, scores, RLE masks from
pycocotools) and ``<name>.png`` (masks, boxes and labels drawn). A
``summary.json`` lists every image, including the ones that failed.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from mrcnn_trt.cli import progress, run_main
from mrcnn_trt.errors import UserError
from mrcnn_trt.imageio import IMAGE_EXTENSIONS

def collect_images(inputs: Sequence[str]) -> List[str]:
    files = []
    for p in inputs:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                print(f"warning: no images in folder {p}", file=sys.stderr)
            files += found
        elif os.path.exists(p):
            files.append(p)
        else:
            print(f"warning: skipping {p}: no such file", file=sys.stderr)
    return files


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrcnn-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files and/or folders of images")
    p.add_argument("--weights", help="checkpoint (.pth); default: the shipped shapes model")
    p.add_argument("--config", help="config preset or JSON (default: from the checkpoint / class count)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--min-confidence", type=float, help="override DETECTION_MIN_CONFIDENCE")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass")
    p.add_argument("--ops", choices=["torch", "cpu"], default="torch",
                   help="custom-op implementation: PyTorch reference or compiled C++ kernels")
    p.add_argument("--device", default="cpu")
    return p


@run_main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    files = collect_images(args.images)
    if not files:
        raise UserError("no input images found")
    if args.batch < 1:
        raise UserError("--batch must be >= 1")
    import torch

    from mrcnn_trt.fileio import write_json_atomic
    from mrcnn_trt.model.checkpoint import load_model
    from mrcnn_trt.model.molding import load_image
    from mrcnn_trt.runtime.results import result_to_json
    from mrcnn_trt.visualize import draw_detections

    model, cfg, _ = load_model(args.weights, args.config, ops_backend=args.ops, device=args.device)
    if args.min_confidence is not None:
        cfg = cfg.replace(DETECTION_MIN_CONFIDENCE=args.min_confidence)
        model.config = cfg
        model.set_ops_backend(args.ops)
    os.makedirs(args.out, exist_ok=True)
    summary, ok = [], 0
    bar = progress(range(0, len(files), args.batch), total=(len(files) + args.batch - 1) // args.batch,
                   desc="demo", unit="batch")

    def read(start):   # pipeline stage 1 (a reader thread): decode the next batch
        chunk = files[start:start + args.batch]
        images, names, failed = [], [], []
        for f in chunk:
            try:
                images.append(load_image(f))
                names.append(f)
            except (ValueError, UserError) as e:
                print(f"warning: {e}; skipped", file=sys.stderr)
                failed.append({"image": f, "error": str(e)})
        return images, names, failed

    def network(item):   # stage 2 (this thread)
        images = item[0]
        if not images:
            return []
        with torch.no_grad():
            return model.detect(images)

    def write(item, results):   # stage 3 (a writer thread, in order): JSON + PNG
        nonlocal ok
        images, names, failed = item
        summary.extend(failed)
        for f, im, r in zip(names, images, results):
            stem = os.path.splitext(os.path.basename(f))[0]
            js = result_to_json(r, cfg.CLASS_NAMES, f)
            write_json_atomic(os.path.join(args.out, stem + ".json"), js)
            png = os.path.join(args.out, stem + ".png")
            from mrcnn_trt.fileio import atomic_path

            with atomic_path(png) as tmp:
                draw_detections(im, r, cfg.CLASS_NAMES).save(tmp, format="PNG")
            summary.append({"image": f, "json": stem + ".json", "png": stem + ".png",
                            "detections": len(js["detections"])})
            ok += 1

    from mrcnn_trt.runtime.pipeline import run_pipelined

    run_pipelined((read(start) for start in bar), network, write)
    write_json_atomic(os.path.join(args.out, "summary.json"), {"processed": ok, "images": summary})
    print(f"{ok}/{len(files)} images processed; results in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

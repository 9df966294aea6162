"""Checks of a COCO instances file, made when it is opened, before any inference.

pycocotools trusts its input: a polygon with coordinates of 1e12 makes its
``frPyObjects`` allocate without bound (1e7 already takes over a gigabyte) or crash,
RLE counts that do not add up to height x width make ``decode`` write past its buffer
and ``COCOeval`` spin for minutes in C (deaf to SIGTERM), a compressed RLE string is
decoded without bounds checks, string image ids make every AP ``n/a``. These
problems would otherwise surface only in the final scoring, after all inference.
:func:`check_coco_dict` refuses such a file with one line naming the entry (by id):

- ``images``: objects with a unique integer ``id``, a relative ``file_name`` inside the
  image folder, integer ``height``/``width`` >= 1 (at most :data:`MAX_IMAGE_PIXELS`);
- ``categories``: objects with a unique integer ``id`` and a string ``name``;
- ``annotations``: objects with a unique integer ``id``, an ``image_id`` and a
  ``category_id`` of the file, a well-formed ``bbox``/``area``/``iscrowd`` and a
  ``segmentation`` that is either

  * polygons: flat lists of >= 3 (x, y) pairs of finite numbers, every vertex within
    :data:`POLYGON_MARGIN` image sizes of the image, the outline at most
    :data:`MAX_OUTLINE` image perimeters long (bounds pycocotools' memory), or
  * RLE: ``size`` equal to the image's ``[height, width]``, ``counts`` a list of
    integers >= 0 or a well-formed compressed string (:func:`decode_rle_string`)
    adding up to height x width.

Image files whose size differs from ``height``/``width`` are found by
:func:`check_image_sizes` (reads only the files' headers).
"""
from __future__ import annotations

import itertools
import math
import os
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mrcnn_trt.errors import UserError

#: the largest image (height x width) an annotation may describe; keeps every RLE count
#: within the 6-character numbers of the compressed format and pycocotools' uint32 counts
MAX_IMAGE_PIXELS = 1 << 29
#: a polygon vertex may lie at most this fraction of the image's width/height outside it
POLYGON_MARGIN = 0.5
#: the outline of an annotation's polygons may be at most this many image perimeters long
MAX_OUTLINE = 100


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v, n: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _decode_rle_strings(strings: Sequence[str]) -> Tuple[Dict[int, str], np.ndarray, np.ndarray]:
    """Decode compressed RLE strings all at once: ``({index: problem}, runs [M] int64,
    owner [M] (the string of each run))``. See :func:`rle_string_problems`."""
    n = len(strings)
    bad: Dict[int, str] = {}
    enc = []
    for i, s in enumerate(strings):
        try:
            enc.append(s.encode("ascii"))
        except UnicodeEncodeError:
            bad[i] = "has a character outside '0'..'o'"
            enc.append(b"")
    lens = np.fromiter(map(len, enc), dtype=np.int64, count=n)
    c = np.frombuffer(b"".join(enc), dtype=np.uint8).astype(np.int64) - 48
    owner = np.repeat(np.arange(n), lens)

    def flag(mask, why):
        for i in np.unique(owner[mask]):
            bad.setdefault(int(i), why)

    invalid = (c < 0) | (c > 63)
    flag(invalid, "has a character outside '0'..'o'")
    c[invalid] = 0
    end = (c & 0x20) == 0                        # the last character of a number
    last = np.cumsum(lens)[lens > 0] - 1
    unfinished = np.zeros(c.size, dtype=bool)
    unfinished[last[~end[last]]] = True
    flag(unfinished, "ends inside a number")
    end[last] = True                             # numbers never run across strings
    ends = np.flatnonzero(end)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    k = np.arange(c.size) - starts[np.cumsum(end) - end]    # position of each character in its number
    flag(k > 5, "has a number longer than 6 characters")
    k = np.minimum(k, 5)
    if not c.size:
        return bad, np.zeros(0, np.int64), np.zeros(0, np.int64)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    x = x - np.where(c[ends] & 0x10, np.left_shift(1, 5 * (k[ends] + 1)), 0)   # sign extension
    num_owner = owner[ends]
    per_string = np.bincount(num_owner, minlength=n)
    j = np.arange(x.size) - (np.cumsum(per_string) - per_string)[num_owner]   # position within its string
    runs = x.copy()
    for sel in ((j % 2 == 1), (j >= 2) & (j % 2 == 0)):   # from j = 3 on, run j adds run j - 2
        xs, ow = x[sel], num_owner[sel]
        if xs.size:
            new = np.concatenate(([True], ow[1:] != ow[:-1]))
            cs = np.cumsum(xs)
            first = np.flatnonzero(new)
            runs[sel] = cs - (cs[first] - xs[first])[np.cumsum(new) - 1]
    flag_runs = np.unique(num_owner[runs < 0])
    for i in flag_runs:
        bad.setdefault(int(i), "decodes to a negative run length")
    return bad, runs, num_owner


def rle_string_problems(strings: Sequence[str], areas: Sequence[int]) -> Dict[int, str]:
    """``{index: reason}`` for each compressed COCO RLE string that pycocotools could
    not decode safely or whose runs do not add up to its mask's ``areas[index]``
    (height x width); empty when all are fine.

    The format (pycocotools ``rleFrString``): characters ``'0'``..``'o'``, each 5 data
    bits and a continuation bit, least significant first, the last one's bit 4 the
    sign; from the fourth run on a number is the difference to the run two before.
    pycocotools decodes without bounds checks (a string ending inside a number is read
    past its end, negative runs wrap around to 4 billion); here every string is
    checked, all at once with numpy: characters in the alphabet, no number longer than
    6 characters, none unfinished, every run >= 0, the runs adding up to the area."""
    bad, runs, owner = _decode_rle_strings(strings)
    sums = np.bincount(owner, weights=runs.astype(np.float64), minlength=len(strings))
    for i in np.flatnonzero(sums != np.asarray(areas, dtype=np.float64)):
        bad.setdefault(int(i), f"has runs adding up to {int(sums[i])}, not height x width = {int(areas[i])}")
    return bad


def decode_rle_string(s: str) -> List[int]:
    """The run lengths of one compressed RLE string (see :func:`rle_string_problems`);
    ValueError if it cannot be decoded safely."""
    bad, runs, _ = _decode_rle_strings([s])
    if bad:
        raise ValueError(bad[0])
    return runs.tolist()


def _image_problem(img) -> Optional[str]:
    if not isinstance(img, dict):
        return "is not a JSON object"
    if not _is_int(img.get("id")):
        return f"has id {_short(img.get('id'))}: image ids must be integers"
    name = img.get("file_name")
    if not isinstance(name, str) or not name.strip():
        return f"has file_name {_short(name)}: expected the image's file name"
    norm = name.replace("\\", "/")
    if os.path.isabs(name) or norm.startswith("/") or ".." in norm.split("/") or "\0" in name:
        return f"has file_name {_short(name)}: expected a path inside the image folder"
    h, w = img.get("height"), img.get("width")
    if not (_is_int(h) and _is_int(w) and h >= 1 and w >= 1):
        return f"has height {_short(h)} and width {_short(w)}: expected integers >= 1"
    if h * w > MAX_IMAGE_PIXELS:
        return f"is {w}x{h}: larger than {MAX_IMAGE_PIXELS} pixels"
    return None


def _polygon_shape_problem(segm: list) -> Optional[str]:
    """The per-polygon checks that need Python: lists of >= 3 (x, y) pairs of numbers."""
    for poly in segm:
        if not (isinstance(poly, list) and {type(v) for v in poly} <= {int, float}):
            return "has a polygon that is not a list of numbers"
        if len(poly) < 6 or len(poly) % 2:
            return (f"has a polygon with {len(poly)} coordinates: a polygon needs at least 3 points "
                    f"(x, y pairs)")
    return None


class Batch:
    """Checks of many entries (annotations, results) collected and run at once with
    numpy: compressed RLE strings (:func:`rle_string_problems`) and polygon geometry
    (finite vertices within :data:`POLYGON_MARGIN` of the image, outline at most
    :data:`MAX_OUTLINE` perimeters). Set :attr:`owner` (what an error names) before
    each entry; :meth:`first_problem` gives the earliest entry's problem."""

    def __init__(self):
        self.owner = None
        self._rle: list = []        # (entry, string, area)
        self._polys: list = []      # (entry, polygons, h, w)
        self._n = -1
        self._last = object()

    def _entry(self) -> int:
        if self.owner is not self._last:
            self._n, self._last = self._n + 1, self.owner
        return self._n

    def add_rle(self, counts: str, area: int) -> None:
        self._rle.append((self._entry(), self.owner, counts, area))

    def add_polygons(self, segm: list, h: int, w: int) -> None:
        self._polys.append((self._entry(), self.owner, segm, h, w))

    def first_problem(self) -> Optional[Tuple[object, str]]:
        """``(owner, reason)`` of the earliest entry with a problem, or None."""
        found = []
        if self._rle:
            bad = rle_string_problems([r[2] for r in self._rle], [r[3] for r in self._rle])
            found += [(self._rle[i][0], self._rle[i][1], f"has a compressed RLE string that {why}")
                      for i, why in bad.items()]
        if self._polys:
            found += self._polygon_problems()
        if not found:
            return None
        _, owner, why = min(found, key=lambda t: t[0])
        return owner, why

    def _polygon_problems(self) -> list:
        polys = [poly for _, _, segm, _, _ in self._polys for poly in segm]
        ann_of_poly = np.repeat(np.arange(len(self._polys)), [len(p[2]) for p in self._polys])
        lens = np.fromiter(map(len, polys), dtype=np.int64, count=len(polys)) // 2
        xy = np.fromiter(itertools.chain.from_iterable(polys), dtype=np.float64).reshape(-1, 2)
        ann = np.repeat(ann_of_poly, lens)                       # annotation of each vertex
        hw = np.array([(h, w) for _, _, _, h, w in self._polys], dtype=np.float64).reshape(-1, 2)
        h, w = hw[ann, 0], hw[ann, 1]
        x, y = xy[:, 0], xy[:, 1]
        out = []
        finite = np.isfinite(x) & np.isfinite(y)
        for k in np.unique(ann[~finite]):
            out.append((k, "has a polygon that is not a list of numbers"))
        x, y = np.where(finite, x, 0.0), np.where(finite, y, 0.0)
        mx, my = POLYGON_MARGIN * w, POLYGON_MARGIN * h
        far = (x < -mx) | (x > w + mx) | (y < -my) | (y > h + my)
        if far.any():
            first = {}
            for i in np.flatnonzero(far):
                first.setdefault(int(ann[i]), int(i))
            for k, i in first.items():
                out.append((k, f"has a polygon vertex ({x[i]:g}, {y[i]:g}) far outside its {int(w[i])}x{int(h[i])} "
                               f"image (at most {POLYGON_MARGIN:g} of the image's size outside)"))
        start = np.cumsum(lens) - lens
        nxt = np.arange(x.size) + 1
        nxt[start + lens - 1] = start                            # each polygon closes on its first vertex
        edge = np.maximum(np.abs(x[nxt] - x), np.abs(y[nxt] - y))
        perimeters = np.bincount(ann, weights=edge, minlength=len(self._polys)) / (2.0 * hw.sum(axis=1))
        for k in np.flatnonzero(perimeters > MAX_OUTLINE):
            out.append((k, f"has polygons whose outline is {perimeters[k]:.0f} times its image's perimeter "
                           f"(at most {MAX_OUTLINE})"))
        return [(self._polys[k][0], self._polys[k][1], why) for k, why in out]


def rle_problem(segm: dict, h: int, w: int, batch: Optional[Batch] = None) -> Optional[str]:
    """What is wrong with an RLE segmentation of an ``h`` x ``w`` image, or None.
    A compressed ``counts`` string is left to ``batch`` when one is given (checked
    with many others at once), else checked here."""
    size = segm.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)):
        return f"has an RLE segmentation with size {_short(size)}: expected [height, width]"
    if list(size) != [h, w]:
        return f"has an RLE segmentation of size {list(size)} but its image is [{h}, {w}] ([height, width])"
    counts = segm.get("counts")
    if isinstance(counts, list):
        if not all(_is_int(c) and c >= 0 for c in counts):
            return "has RLE counts that are not all integers >= 0"
        total = sum(counts)
        if total != h * w:
            return f"has RLE counts adding up to {total}, not height x width = {h * w}"
        return None
    if isinstance(counts, str):
        if batch is not None:
            batch.add_rle(counts, h * w)
            return None
        why = rle_string_problems([counts], [h * w]).get(0)
        return f"has a compressed RLE string that {why}" if why else None
    return "has an RLE segmentation without 'counts'"


def annotation_problem(ann, images: Dict[int, dict], category_ids, batch: Optional[Batch] = None) -> Optional[str]:
    """What is wrong with one instance annotation, or None. ``images``: image id ->
    image entry (already checked). With a :class:`Batch`, the numeric checks of its
    segmentation are left to it; without, they are made here."""
    if not isinstance(ann, dict):
        return "is not a JSON object"
    img = images.get(ann.get("image_id")) if _is_int(ann.get("image_id")) else None
    if img is None:
        return f"refers to image_id {_short(ann.get('image_id'))}, which is not in 'images'"
    cat = ann.get("category_id")
    if not _is_int(cat) or cat not in category_ids:
        return f"refers to category_id {_short(cat)}, which is not in 'categories'"
    bbox = ann.get("bbox")
    if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))
                                 and bbox[2] >= 0 and bbox[3] >= 0):
        return f"has bbox {_short(bbox)}: expected [x, y, width, height] with width, height >= 0"
    if "area" in ann and not _is_number(ann["area"]):
        return f"has area {_short(ann['area'])}: expected a number"
    if ann.get("iscrowd", 0) not in (0, 1):
        return f"has iscrowd {_short(ann.get('iscrowd'))}: expected 0 or 1"
    segm = ann.get("segmentation")
    h, w = img["height"], img["width"]
    if segm is None:
        return "has no segmentation"
    if isinstance(segm, list):
        why = _polygon_shape_problem(segm)
        if why or not segm:
            return why
        if batch is not None:
            batch.add_polygons(segm, h, w)
            return None
        one = Batch()
        one.add_polygons(segm, h, w)
        found = one.first_problem()
        return found[1] if found else None
    if isinstance(segm, dict):
        return rle_problem(segm, h, w, batch)
    return f"has segmentation of type {type(segm).__name__}: expected polygons or RLE"


def check_coco_dict(data, annotation_file: str) -> None:
    """Refuse a malformed COCO instances dict with one :class:`UserError` line naming
    the file and the first bad entry (see the module docstring)."""
    where = annotation_file
    if not isinstance(data, dict):
        raise UserError(f"not a COCO instances file: {where}: the top level is not a JSON object")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"not a COCO instances file: {where}: no '{key}' list")
    anns = data.get("annotations")
    if anns is not None and not isinstance(anns, list):
        raise UserError(f"not a COCO instances file: {where}: 'annotations' is not a list")
    if not anns:
        raise UserError(f"{where} has no annotations: evaluation and training need instance "
                        f"annotations (for unlabeled images pass their folder instead)")
    images: Dict[int, dict] = {}
    for n, img in enumerate(data["images"]):
        why = _image_problem(img)
        if why is None and img["id"] in images:
            why = "appears twice in 'images'"
        if why:
            iid = img.get("id") if isinstance(img, dict) else None
            name = f"image id {_short(iid)}" if _is_int(iid) else f"image entry {n}"
            raise UserError(f"{where}: {name} {why}")
        images[img["id"]] = img
    category_ids = set()
    for n, cat in enumerate(data["categories"]):
        cid = cat.get("id") if isinstance(cat, dict) else None
        if not isinstance(cat, dict):
            why = "is not a JSON object"
        elif not _is_int(cid):
            why = f"has id {_short(cid)}: category ids must be integers"
        elif cid in category_ids:
            why = "appears twice in 'categories'"
        elif not isinstance(cat.get("name"), str):
            why = f"has name {_short(cat.get('name'))}: expected a string"
        else:
            category_ids.add(cid)
            continue
        name = f"category id {_short(cid)}" if _is_int(cid) else f"category entry {n}"
        raise UserError(f"{where}: {name} {why}")
    ann_ids = set()
    batch = Batch()          # RLE strings and polygon geometry, checked together
    for n, ann in enumerate(anns):
        aid = ann.get("id") if isinstance(ann, dict) else None
        name = f"annotation id {_short(aid)}" if _is_int(aid) else f"annotation entry {n}"
        batch.owner = name
        if isinstance(ann, dict) and not _is_int(aid):
            why = f"has id {_short(aid)}: annotation ids must be integers"
        elif aid in ann_ids:
            why = "appears twice in 'annotations'"
        else:
            why = annotation_problem(ann, images, category_ids, batch)
        if why:
            raise UserError(f"{where}: {name} {why}")
        ann_ids.add(aid)
    found = batch.first_problem()
    if found:
        raise UserError(f"{where}: {found[0]} {found[1]}")


def check_image_sizes(images: Iterable[dict], image_dir: str, annotation_file: str) -> None:
    """Compare each image file's size (its header only) with the annotation's
    ``height``/``width``; one :class:`UserError` line for the first that differs.
    Files that are missing or unreadable are left to the image reader (they are
    skipped and listed like any unreadable image)."""
    for img in images:
        path = os.path.join(image_dir, img["file_name"])
        try:
            if not os.path.isfile(path):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(path) as im:
                    w, h = im.size
        except Exception:  # noqa: BLE001 - unreadable: reported when it is read
            continue
        if (h, w) != (img["height"], img["width"]):
            raise UserError(f"{annotation_file}: image id {img['id']} says {img['width']}x{img['height']} but "
                            f"{path} is {w}x{h}")

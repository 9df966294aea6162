"""INT8 calibration cache files with a provenance header (no TensorRT needed).

TensorRT's calibration cache is an opaque payload (scales per tensor) that is
only valid for the network, preprocessing and TensorRT version it was made
with; TensorRT itself does not notice when it is fed a cache of another model.
Our cache file therefore starts with one JSON line describing where it comes
from, followed by TensorRT's bytes unchanged::

    {"format": "mrcnn-calib-cache", "version": 1, "onnx_sha256": "...", ...}\\n
    <TensorRT payload>

:func:`read_cache` returns the header and payload; :func:`check_header`
compares a header with what the current build expects and raises
:class:`StaleCalibrationCache` (one line naming every differing field) instead
of letting a stale cache be reused silently. A file without our header (a raw
TensorRT cache) is rejected too, since its origin cannot be verified.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from mrcnn_trt.engine.archs import parse_trt_version
from mrcnn_trt.errors import UserError
from mrcnn_trt.fileio import write_bytes_atomic

from .errors import EXIT_STALE_CALIBRATION_CACHE

FORMAT = "mrcnn-calib-cache"
FORMAT_VERSION = 1
from mrcnn_trt.model.molding import MOLDING_VERSION  # noqa: E402  (recorded in caches and sidecars)
CALIBRATORS = ("entropy2", "minmax")


class StaleCalibrationCache(UserError):
    """The cache was made for another model, preprocessing or TensorRT."""

    exit_code = EXIT_STALE_CALIBRATION_CACHE


class BadCalibrationCache(UserError):
    """The file is not a calibration cache of this project (or is damaged)."""

    exit_code = EXIT_STALE_CALIBRATION_CACHE


@dataclass(frozen=True)
class Preprocessing:
    """How calibration images were turned into network inputs."""

    image_size: int                      # S of the [N,3,S,S] input
    mean_pixel: Tuple[float, ...]        # RGB mean (subtracted inside the network)
    molding_version: int = MOLDING_VERSION
    min_dim: Optional[int] = None        # IMAGE_MIN_DIM used for resizing (None: unknown)

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["mean_pixel"] = [round(float(x), 6) for x in self.mean_pixel]
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Preprocessing":
        return cls(image_size=int(d["image_size"]), mean_pixel=tuple(float(x) for x in d["mean_pixel"]),
                   molding_version=int(d.get("molding_version", MOLDING_VERSION)),
                   min_dim=None if d.get("min_dim") is None else int(d["min_dim"]))

    @classmethod
    def from_sidecar(cls, sidecar: Dict[str, Any]) -> "Preprocessing":
        """From an ONNX sidecar (``model.onnx.json``: image_size, mean_pixel, config)."""
        cfg = sidecar.get("config") or {}
        mean = sidecar.get("mean_pixel", cfg.get("MEAN_PIXEL"))
        if mean is None or "image_size" not in sidecar:
            raise UserError("the ONNX sidecar lacks image_size/mean_pixel; re-export the model")
        return cls(image_size=int(sidecar["image_size"]), mean_pixel=tuple(float(x) for x in mean),
                   molding_version=int(sidecar.get("molding_version", MOLDING_VERSION)),
                   min_dim=cfg.get("IMAGE_MIN_DIM"))


@dataclass(frozen=True)
class CacheHeader:
    """Provenance of a calibration cache (the first line of the file)."""

    onnx_sha256: str
    preprocessing: Preprocessing
    batch: int                    # images per calibration batch
    count: int                    # images seen by the calibrator
    tensorrt: str                 # TensorRT version that wrote the payload, "10.4.0"
    calibrator: str = "entropy2"  # "entropy2" | "minmax"
    payload_sha256: str = ""      # filled by write_cache
    extra: Dict[str, Any] = field(default_factory=dict)   # free-form (image folder, ...)

    def to_json(self) -> Dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "onnx_sha256": self.onnx_sha256,
                "preprocessing": self.preprocessing.to_json(), "batch": self.batch, "count": self.count,
                "tensorrt": self.tensorrt, "calibrator": self.calibrator,
                "payload_sha256": self.payload_sha256, "extra": self.extra}

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "CacheHeader":
        return cls(onnx_sha256=str(d["onnx_sha256"]), preprocessing=Preprocessing.from_json(d["preprocessing"]),
                   batch=int(d["batch"]), count=int(d["count"]), tensorrt=str(d["tensorrt"]),
                   calibrator=str(d.get("calibrator", "entropy2")),
                   payload_sha256=str(d.get("payload_sha256", "")), extra=dict(d.get("extra") or {}))


def _same_trt(a: str, b: str) -> bool:
    """Same TensorRT release (major.minor.patch; the build number may differ)."""
    try:
        return parse_trt_version(a) == parse_trt_version(b)
    except ValueError:
        return a == b


def encode_cache(header: CacheHeader, payload: bytes) -> bytes:
    """Header line + payload (the header's payload_sha256 is filled in)."""
    if header.calibrator not in CALIBRATORS:
        raise ValueError(f"calibrator must be one of {CALIBRATORS}, got {header.calibrator!r}")
    d = header.to_json()
    d["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    line = json.dumps(d, sort_keys=True, separators=(",", ":"))
    assert "\n" not in line
    return line.encode() + b"\n" + bytes(payload)


def decode_cache(data: bytes, source: str = "calibration cache") -> Tuple[CacheHeader, bytes]:
    """Inverse of :func:`encode_cache`; raises :class:`BadCalibrationCache`."""
    nl = data.find(b"\n")
    first = data[:nl] if nl >= 0 else data
    try:
        d = json.loads(first.decode())
        ok = isinstance(d, dict) and d.get("format") == FORMAT
    except (UnicodeDecodeError, ValueError):
        ok = False
    if not ok:
        raise BadCalibrationCache(f"{source} has no mrcnn-calib-cache header (a raw TensorRT cache?): its model "
                                  f"and preprocessing cannot be verified; recalibrate with --calib-images")
    if d.get("version") != FORMAT_VERSION:
        raise BadCalibrationCache(f"{source}: cache format version {d.get('version')} is not supported "
                                  f"(expected {FORMAT_VERSION}); recalibrate")
    try:
        header = CacheHeader.from_json(d)
    except (KeyError, TypeError, ValueError) as e:
        raise BadCalibrationCache(f"{source}: damaged header ({e}); recalibrate") from None
    payload = data[nl + 1:] if nl >= 0 else b""
    if not payload:
        raise BadCalibrationCache(f"{source} has an empty TensorRT payload; recalibrate")
    if header.payload_sha256 and hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise BadCalibrationCache(f"{source}: payload does not match its header checksum (truncated or edited); "
                                  f"recalibrate")
    return header, payload


def write_cache(path: str | os.PathLike, header: CacheHeader, payload: bytes) -> None:
    """Write header + payload atomically."""
    write_bytes_atomic(path, encode_cache(header, payload))


def read_cache(path: str | os.PathLike) -> Tuple[CacheHeader, bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError(f"calibration cache not found: {path}") from None
    return decode_cache(data, source=os.fspath(path))


def header_differences(found: CacheHeader, expected: CacheHeader, *, check_count: bool = False) -> list[str]:
    """Human-readable differences that make ``found`` unusable for ``expected``."""
    diffs = []
    if found.onnx_sha256 != expected.onnx_sha256:
        diffs.append(f"ONNX model (sha256 {found.onnx_sha256[:12]}... vs {expected.onnx_sha256[:12]}...)")
    fp, ep = found.preprocessing, expected.preprocessing
    if fp.image_size != ep.image_size:
        diffs.append(f"image size ({fp.image_size} vs {ep.image_size})")
    if len(fp.mean_pixel) != len(ep.mean_pixel) or any(abs(a - b) > 1e-4 for a, b in zip(fp.mean_pixel, ep.mean_pixel)):
        diffs.append(f"mean pixel ({list(fp.mean_pixel)} vs {list(ep.mean_pixel)})")
    if fp.molding_version != ep.molding_version:
        diffs.append(f"molding version ({fp.molding_version} vs {ep.molding_version})")
    if fp.min_dim is not None and ep.min_dim is not None and fp.min_dim != ep.min_dim:
        diffs.append(f"IMAGE_MIN_DIM ({fp.min_dim} vs {ep.min_dim})")
    if not _same_trt(found.tensorrt, expected.tensorrt):
        diffs.append(f"TensorRT ({found.tensorrt} vs {expected.tensorrt})")
    if found.calibrator != expected.calibrator:
        diffs.append(f"calibrator ({found.calibrator} vs {expected.calibrator})")
    if check_count and found.count != expected.count:
        diffs.append(f"image count ({found.count} vs {expected.count})")
    return diffs


def check_header(found: CacheHeader, expected: CacheHeader, source: str = "calibration cache",
                 *, check_count: bool = False) -> None:
    """Raise :class:`StaleCalibrationCache` if ``found`` was made for something else.

    The batch size does not matter (scales do not depend on it); the image
    count only when ``check_count`` (a cache from fewer images is still valid).
    """
    diffs = header_differences(found, expected, check_count=check_count)
    if diffs:
        raise StaleCalibrationCache(f"{source} is stale: made for a different {'; '.join(diffs)} "
                                    f"(found vs expected); recalibrate with --calib-images or delete the file")


def load_checked(path: str | os.PathLike, expected: CacheHeader) -> bytes:
    """Read a cache, check it against ``expected`` and return the TensorRT payload."""
    header, payload = read_cache(path)
    check_header(header, expected, source=os.fspath(path))
    return payload

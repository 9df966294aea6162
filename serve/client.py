"""HTTP / gRPC client of the ``mrcnn`` ensemble (``mrcnn-triton infer``).

    client = TritonClient("http://127.0.0.1:8000")      # or "grpc://127.0.0.1:8001"
    doc = client.detect_file("photo.jpg")                # mrcnn-demo's per-image JSON (a dict)
    docs = client.detect([jpeg_bytes, png_bytes])        # several images in one request

The wire format needs nothing from this package (any Triton client will do):
send the encoded file as a UINT8 tensor ``IMAGE`` of shape ``[1, L]`` (several
images: ``[n, L]``, each file zero-padded to the longest - image decoders stop
at the end of the file), read the UINT8 output ``JSON`` of shape ``[n, L']``:
row i is the UTF-8 text of image i's JSON document, padded with spaces.
``"image"`` is ``null`` in the server's documents; this client fills in the
file name, so its files equal ``mrcnn-demo``'s.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mrcnn_trt.errors import UserError

from .repository import IMAGE, JSON_OUT


class InferenceError(UserError):
    """The server answered a request with an error (bad image, overload, ...)."""


def parse_url(url: str, protocol: Optional[str] = None) -> Tuple[str, str, bool]:
    """``"grpc://h:p"`` / ``"http://h:p"`` / ``"https://h:p"`` / ``"h:p"`` -> (protocol, "h:p", ssl)."""
    ssl = False
    for scheme, proto in (("grpc://", "grpc"), ("http://", "http"), ("https://", "http")):
        if url.startswith(scheme):
            if protocol and protocol != proto:
                raise UserError(f"--protocol {protocol} contradicts the URL {url}")
            protocol, ssl, url = proto, scheme == "https://", url[len(scheme):]
            break
    protocol = protocol or "http"
    if protocol not in ("http", "grpc"):
        raise UserError(f"unknown protocol {protocol!r} (http|grpc)")
    url = url.rstrip("/")
    if not url or "/" in url:
        raise UserError(f"expected HOST:PORT (optionally http://, https:// or grpc://), got {url!r}")
    return protocol, url, ssl


def encode_batch(images: Sequence[bytes]) -> np.ndarray:
    """Encoded files -> UINT8 [n, L], zero-padded to the longest."""
    if not images:
        raise UserError("no images to send")
    width = max(len(b) for b in images)
    out = np.zeros((len(images), width), np.uint8)
    for i, b in enumerate(images):
        out[i, :len(b)] = np.frombuffer(b, np.uint8)
    return out


def decode_documents(text: np.ndarray) -> List[dict]:
    """UINT8 [n, L'] -> n JSON documents."""
    text = np.asarray(text)
    if text.dtype != np.uint8 or text.ndim != 2:
        raise InferenceError(f"unexpected {JSON_OUT} output: {text.dtype} {list(text.shape)}")
    return [json.loads(row.tobytes().decode("utf-8")) for row in text]


class TritonClient:
    """One connection to a Triton server serving the ``mrcnn`` ensemble (not thread-safe:
    use one client per thread)."""

    def __init__(self, url: str, protocol: Optional[str] = None, model: str = "mrcnn", timeout_s: float = 600.0):
        self.protocol, self.url, ssl = parse_url(url, protocol)
        self.model = model
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as tc
            else:
                import tritonclient.http as tc
        except ImportError:
            raise UserError("the Triton client is not installed: pip install -e '.[serve]' "
                            "(tritonclient[http,grpc])") from None
        self._tc = tc
        self.timeout_s = timeout_s
        if self.protocol == "grpc":
            self._client = tc.InferenceServerClient(self.url, ssl=ssl)
        else:
            self._client = tc.InferenceServerClient(self.url, ssl=ssl, connection_timeout=timeout_s,
                                                    network_timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, fn, *args, **kw):
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kw)
        except InferenceServerException as e:
            raise InferenceError(f"{self.protocol}://{self.url}: {e.message()}") from None
        except OSError as e:   # connection refused / reset
            raise InferenceError(f"{self.protocol}://{self.url}: {e}") from None

    def is_ready(self) -> bool:
        try:
            return bool(self._call(self._client.is_model_ready, self.model))
        except InferenceError:
            return False

    def infer_raw(self, tensor: np.ndarray, name: str = IMAGE, datatype: Optional[str] = None):
        """Send any array as ``IMAGE`` (tests send wrong types on purpose); returns the result object."""
        from tritonclient.utils import np_to_triton_dtype

        inp = self._tc.InferInput(name, list(tensor.shape), datatype or np_to_triton_dtype(tensor.dtype))
        inp.set_data_from_numpy(tensor)
        outputs = [self._tc.InferRequestedOutput(JSON_OUT)]
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        return self._call(self._client.infer, self.model, [inp], outputs=outputs, **kw)

    def detect(self, images: Sequence[bytes]) -> List[dict]:
        """Encoded image files (one request) -> one mrcnn-demo JSON document each."""
        result = self.infer_raw(encode_batch(images))
        docs = decode_documents(result.as_numpy(JSON_OUT))
        if len(docs) != len(images):
            raise InferenceError(f"{len(docs)} results for {len(images)} images")
        return docs

    def detect_file(self, path: str) -> dict:
        """One image file -> its JSON document, with ``"image"`` set to ``path`` (as mrcnn-demo)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}") from None
        doc = self.detect([data])[0]
        doc["image"] = path
        return doc

    def statistics(self, model: Optional[str] = None) -> Dict:
        """Server-side inference statistics of ``model`` (JSON form of both protocols)."""
        if self.protocol == "grpc":
            return self._call(self._client.get_inference_statistics, model or self.model, as_json=True)
        return self._call(self._client.get_inference_statistics, model or self.model)


def model_statistics(stats: Dict) -> Dict:
    """The first entry of a statistics reply, with counts as ints: ``inference_count``,
    ``execution_count``, ``batch_sizes`` {size: executions}."""
    entry = (stats.get("model_stats") or [{}])[0]
    batches = {int(b["batch_size"]): int((b.get("compute_infer") or {}).get("count", 0))
               for b in entry.get("batch_stats") or []}
    return {"inference_count": int(entry.get("inference_count", 0)),
            "execution_count": int(entry.get("execution_count", 0)), "batch_sizes": batches}


def default_json_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] + ".json"

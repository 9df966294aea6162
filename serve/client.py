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
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mrcnn_trt.errors import UserError

from .pbtxt import IMAGE, JSON_OUT


#: seconds to wait for a connection (an address that drops packets must not hang the command)
CONNECT_TIMEOUT_S = 30.0


class InferenceError(UserError):
    """The server answered a request with an error (bad image, overload, ...)."""


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)")


def parse_url(url: str, protocol: Optional[str] = None) -> Tuple[str, str, bool]:
    """``"grpc://h:p"`` / ``"http://h:p"`` / ``"https://h:p"`` / ``"h:p"`` -> (protocol, "h:p", ssl).

    HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT a number 1-65535.
    Anything else is a :class:`UserError` naming what is wrong."""
    if not isinstance(url, str) or not url.isprintable():
        raise UserError(f"the server URL {url!r} has characters that cannot be part of an address")
    ssl, given = False, url
    for scheme, proto in (("grpc://", "grpc"), ("http://", "http"), ("https://", "http")):
        if url.lower().startswith(scheme):
            if protocol and protocol != proto:
                raise UserError(f"--protocol {protocol} contradicts the URL {url}")
            protocol, ssl, url = proto, scheme == "https://", url[len(scheme):]
            break
    else:
        if "://" in url:
            raise UserError(f"unknown scheme in {given!r}: use http://, https:// or grpc://")
    protocol = protocol or "http"
    if protocol not in ("http", "grpc"):
        raise UserError(f"unknown protocol {protocol!r} (http|grpc)")
    url = url.rstrip("/")
    host, sep, port = url.rpartition(":")
    if not sep or not host or "/" in url or "@" in url:
        raise UserError(f"expected HOST:PORT (optionally http://, https:// or grpc://), got {given!r}")
    if not _HOST.fullmatch(host):
        raise UserError(f"{host!r} in {given!r} is not a host name or IP address")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise UserError(f"the port {port!r} in {given!r} is not a number from 1 to 65535")
    return protocol, f"{host}:{int(port)}", ssl


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
    try:
        docs = [json.loads(row.tobytes().decode("utf-8")) for row in text]
    except (UnicodeDecodeError, ValueError) as e:
        raise InferenceError(f"the server's {JSON_OUT} output is not JSON text: {_one_line(e)}") from None
    if not all(isinstance(d, dict) for d in docs):
        raise InferenceError(f"the server's {JSON_OUT} output is not one JSON object per image")
    return docs


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
        self._client = None
        try:
            if self.protocol == "grpc":
                self._client = tc.InferenceServerClient(self.url, ssl=ssl)
            else:
                self._client = tc.InferenceServerClient(self.url, ssl=ssl, network_timeout=timeout_s,
                                                        connection_timeout=min(timeout_s, CONNECT_TIMEOUT_S))
        except Exception as e:  # noqa: BLE001 - the client libraries raise assorted types for bad addresses
            raise UserError(f"cannot connect to {self.protocol}://{self.url}: {_one_line(e)}") from None

    def close(self) -> None:
        if self._client is not None:
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
            raise InferenceError(f"{self.protocol}://{self.url}: {_one_line(e.message())}") from None
        except (OSError, ValueError, TimeoutError) as e:   # connection refused / reset, name not resolved
            raise InferenceError(f"{self.protocol}://{self.url}: {_one_line(e)}") from None

    def is_ready(self) -> bool:
        try:
            return bool(self._call(self._client.is_model_ready, self.model))
        except InferenceError:
            return False

    def check_ready(self) -> None:
        """Raise a :class:`UserError` saying why the model cannot be used: the server cannot be
        reached, or it does not serve the model (naming the ones it does), or it is not ready."""
        where = f"{self.protocol}://{self.url}"
        try:
            kw = {"client_timeout": CONNECT_TIMEOUT_S} if self.protocol == "grpc" else {}
            live = self._call(self._client.is_server_live, **kw)
        except InferenceError as e:
            raise UserError(f"cannot reach a Triton server at {where} ({str(e).split(': ', 1)[-1]}): is "
                            f"mrcnn-triton serve running there?") from None
        if not live:
            raise UserError(f"the Triton server at {where} is not live")
        if self.is_ready():
            return
        try:
            index = self._call(self._client.get_model_repository_index)
            index = index if isinstance(index, list) else [dict(name=m.name, state=m.state) for m in index.models]
            names = sorted({str(m.get("name")) for m in index})
        except InferenceError:   # the repository endpoint is restricted (mrcnn-triton serve)
            names = []
        served = f" (it serves {', '.join(names)})" if names else ""
        raise UserError(f"model {self.model!r} is not ready at {where}{served}: pass --model NAME, or wait for the "
                        f"server to finish loading")

    def infer_raw(self, tensor: np.ndarray, name: str = IMAGE, datatype: Optional[str] = None):
        """Send any array as ``IMAGE`` (tests send wrong types on purpose); returns the result object."""
        from tritonclient.utils import np_to_triton_dtype

        inp = self._tc.InferInput(name, list(tensor.shape), datatype or np_to_triton_dtype(tensor.dtype))
        inp.set_data_from_numpy(tensor)
        outputs = [self._tc.InferRequestedOutput(JSON_OUT)]
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        return self._call(self._client.infer, self.model, [inp], outputs=outputs, **kw)

    def detect(self, images: Sequence[bytes]) -> List[dict]:
        """Encoded image files (one request) -> one mrcnn-demo JSON document each. One bad image
        fails the whole request (Triton answers a request as a whole): see :meth:`detect_each`."""
        result = self.infer_raw(encode_batch(images))
        docs = decode_documents(result.as_numpy(JSON_OUT))
        if len(docs) != len(images):
            raise InferenceError(f"{len(docs)} results for {len(images)} images")
        return docs

    def detect_each(self, images: Sequence[bytes]) -> List[Union[dict, InferenceError]]:
        """Like :meth:`detect`, but per image: a document, or the :class:`InferenceError` of that
        image. When a request of several images fails, each image is sent again alone (the
        failure happens while decoding, before the network runs, so this costs little)."""
        try:
            return list(self.detect(images))
        except InferenceError as e:
            if len(images) == 1:
                return [e]
            first = e
        out: List[Union[dict, InferenceError]] = []
        for data in images:
            try:
                out.append(self.detect([data])[0])
            except InferenceError as e:
                out.append(e)
        if all(isinstance(r, InferenceError) for r in out) and len({str(r) for r in out}) == 1:
            return [first] * len(images)   # e.g. the server went away: one cause
        return out

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


def _one_line(e) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def default_json_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] + ".json"


def json_names(files: Sequence[str]) -> Dict[str, str]:
    """A distinct result file name per input: ``NAME.json``; where two inputs share a name,
    ``NAME_EXT.json``, then ``NAME_EXT_2.json``, ... (no result overwrites another)."""
    out: Dict[str, str] = {}
    taken = set()
    clash = {}
    for f in files:
        clash[default_json_name(f)] = clash.get(default_json_name(f), 0) + 1
    for f in dict.fromkeys(files):
        name = default_json_name(f)
        if clash[name] > 1:
            stem, ext = os.path.splitext(os.path.basename(f))
            name = f"{stem}_{ext.lstrip('.').lower()}.json" if ext else name
        base, k = name[:-5], 2
        while name in taken or name == "summary.json":
            name, k = f"{base}_{k}.json", k + 1
        taken.add(name)
        out[f] = name
    return out

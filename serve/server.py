"""Run a real ``tritonserver`` on 127.0.0.1 for a model repository (``mrcnn-triton serve``).

    with TritonServer("triton_repo", http_port=0, grpc_port=0, metrics_port=0) as srv:
        srv.http_url     # "127.0.0.1:41234" (port 0: a free port is chosen)
        srv.memory_mb()  # resident memory of the server and its Python-backend stubs

Which ``tritonserver`` (:func:`find_server`, first hit):

1. an explicit path (``--server``) or ``$MRCNN_TRITONSERVER``;
2. a full Triton install: ``tritonserver`` on ``PATH`` or ``/opt/tritonserver``
   (NVIDIA's container), with its own ``backends/`` (python, onnxruntime,
   tensorrt); TensorRT plugin libraries found in the repository are passed with
   ``--backend-config=tensorrt,plugins=...``;
3. the standalone server of the ``nvidia-pytriton`` wheel (Triton 2.51, Python
   backend only), installed with ``pip install --no-deps nvidia-pytriton==0.7.0``
   (the wheel declares ``numpy<2`` for its own Python API, which is not used).
   The wheel ships one Python-backend stub per Python version; a backend folder
   with the stub of *this* Python is assembled (symlinks) in a temporary folder
   for the lifetime of the server, so the installed package is never modified.

What the server exposes: :mod:`.access` (shared-memory, model-repository, trace and
logging endpoints are off unless a key is given). Its ``/dev/shm`` regions:
:mod:`.shm` (private, removed whenever the server stops). :meth:`TritonServer.supervise`
keeps it serving: a dead Python-backend stub (Triton keeps answering "ready" while
every request fails) or a crashed server is restarted, with a limit.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from mrcnn_trt.errors import UserError

from . import shm
from .access import AdminAccess
from .repository import TRT_LIBRARY

PYTRITON_REQUIREMENT = "nvidia-pytriton==0.7.0"
ENV_VAR = "MRCNN_TRITONSERVER"
INSTALL_HINT = (f"install the standalone server with `pip install --no-deps {PYTRITON_REQUIREMENT}` (its "
                f"tritonserver binary only; --no-deps keeps NumPy 2), run inside NVIDIA's Triton container, or "
                f"pass --server PATH")


class ServerError(UserError):
    """tritonserver is missing, cannot start, or the repository needs backends it lacks."""


@dataclass(frozen=True)
class ServerInstall:
    binary: str
    backends: str              # folder holding one folder per backend
    standalone: bool           # nvidia-pytriton's server: Python backend only
    stubs: Optional[str] = None   # nvidia-pytriton: python_backend_stubs/<major.minor>/

    def available_backends(self) -> List[str]:
        if not os.path.isdir(self.backends):
            return []
        return sorted(d for d in os.listdir(self.backends) if os.path.isdir(os.path.join(self.backends, d)))


def _full_install(binary: str) -> ServerInstall:
    root = os.path.dirname(os.path.dirname(os.path.realpath(binary)))
    return ServerInstall(binary, os.path.join(root, "backends"), standalone=False)


def pytriton_server() -> Optional[ServerInstall]:
    """The standalone server of an installed nvidia-pytriton wheel (without importing pytriton,
    whose own dependencies are not installed)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = os.path.join(list(spec.submodule_search_locations)[0], "tritonserver")
    binary = os.path.join(root, "bin", "tritonserver")
    if not os.path.isfile(binary):
        return None
    return ServerInstall(binary, os.path.join(root, "backends"), standalone=True,
                         stubs=os.path.join(root, "python_backend_stubs"))


def find_server(path: Optional[str] = None) -> ServerInstall:
    """Locate a tritonserver (see the module docstring); raises :class:`ServerError`."""
    explicit = path or os.environ.get(ENV_VAR)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ServerError(f"tritonserver not found or not executable: {explicit}")
        found = pytriton_server()
        if found and os.path.realpath(found.binary) == os.path.realpath(explicit):
            return found
        return _full_install(explicit)
    for candidate in (shutil.which("tritonserver"), "/opt/tritonserver/bin/tritonserver"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return _full_install(candidate)
    found = pytriton_server()
    if found:
        return found
    raise ServerError(f"no tritonserver found: {INSTALL_HINT}")


# --------------------------------------------------------------------------- repository needs
def repository_models(repo: str) -> Dict[str, str]:
    """Model folder -> backend ("python", "onnxruntime", "tensorrt", "ensemble", ...) from each config.pbtxt."""
    if not os.path.isdir(repo):
        what = "is not a folder" if os.path.exists(repo) else "not found"
        raise ServerError(f"model repository {what}: {repo}")
    out = {}
    for name in sorted(os.listdir(repo)):
        cfg = os.path.join(repo, name, "config.pbtxt")
        if name.startswith(".") or not os.path.isfile(cfg):
            continue
        try:
            with open(cfg, "rb") as f:
                text = f.read(1 << 20).decode("utf-8", errors="replace")
        except OSError as e:
            raise ServerError(f"cannot read {cfg}: {e.strerror}") from None
        platform = re.search(r'^\s*platform\s*:\s*"([^"]+)"', text, re.M)
        backend = re.search(r'^\s*backend\s*:\s*"([^"]+)"', text, re.M)
        kind = backend.group(1) if backend else (platform.group(1) if platform else "?")
        out[name] = {"tensorrt_plan": "tensorrt", "onnxruntime_onnx": "onnxruntime"}.get(kind, kind)
    if not out:
        raise ServerError(f"{repo} holds no model (no <model>/config.pbtxt): write one with mrcnn-triton repo")
    return out


def plugin_libraries(repo: str, models: Dict[str, str]) -> List[str]:
    """TensorRT plugin libraries stored beside the plans of ``tensorrt`` models."""
    libs = []
    for name, kind in models.items():
        if kind == "tensorrt":
            for version in sorted(os.listdir(os.path.join(repo, name))):
                lib = os.path.join(repo, name, version, TRT_LIBRARY)
                if os.path.isfile(lib):
                    libs.append(os.path.abspath(lib))
    return libs


def check_backends(install: ServerInstall, models: Dict[str, str]) -> None:
    have = set(install.available_backends()) | {"ensemble"}
    missing = {name: kind for name, kind in models.items() if kind not in have}
    if missing:
        listed = ", ".join(f"{n} ({k})" for n, k in missing.items())
        what = ("the standalone tritonserver of nvidia-pytriton has the Python backend only"
                if install.standalone else f"{install.backends} has no such backend")
        raise ServerError(f"{listed} need(s) a backend this server lacks: {what}; serve this repository with a full "
                          f"Triton (NVIDIA's container) or write it with --backend python")


# --------------------------------------------------------------------------- helpers
def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``port`` (a closed connection in TIME_WAIT does not count)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started the server dies (Linux), so a
    killed client never leaves an orphan server holding its ports."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stub_for_this_python(install: ServerInstall) -> str:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = os.path.join(install.stubs or "", version, "triton_python_backend_stub")
    if not os.path.isfile(stub):
        have = sorted(os.listdir(install.stubs)) if install.stubs and os.path.isdir(install.stubs) else []
        raise ServerError(f"nvidia-pytriton has no Python-backend stub for Python {version} (it has "
                          f"{', '.join(have) or 'none'}): use one of those Python versions")
    if shutil.which("ldd"):
        r = subprocess.run(["ldd", stub], capture_output=True, text=True)
        missing = re.findall(r"^\s*(\S+) => not found", r.stdout, re.M)
        if missing:
            raise ServerError(f"the Python-backend stub needs {', '.join(missing)} (the shared libpython of Python "
                              f"{version}); install it (Debian/Ubuntu: apt install libpython{version})")
    return stub


def _standalone_backends(install: ServerInstall, folder: str) -> str:
    """A backend folder for the pytriton server: its Python backend + the stub of this Python (symlinks)."""
    src = os.path.join(install.backends, "python")
    dst = os.path.join(folder, "backends", "python")
    os.makedirs(dst)
    for name in os.listdir(src):
        if not name.startswith("__"):
            os.symlink(os.path.join(src, name), os.path.join(dst, name))
    os.symlink(_stub_for_this_python(install), os.path.join(dst, "triton_python_backend_stub"))
    return os.path.dirname(dst)


def process_tree_rss_mb(pid: int) -> Dict[str, float]:
    """Resident memory (MB) of ``pid`` and of all its descendants (Linux /proc)."""
    def rss(p: int) -> float:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 0.0

    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    children, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        children += kids
        todo += kids
    own, kids_rss = rss(pid), sum(rss(c) for c in children)
    return {"server_mb": round(own, 1), "stubs_mb": round(kids_rss, 1), "total_mb": round(own + kids_rss, 1),
            "processes": 1 + len(children)}


#: log lines of a server without a GPU that are harmless (every start logs them)
BENIGN_LOG_LINES = re.compile(r"CudaDriverHelper has not been initialized|unable to create stream|CUDA driver version "
                              r"is insufficient|pinned memory|Unable to allocate pinned")
#: lines that explain a crash (C++ exceptions, assertions, fatal signals, stub failures)
FATAL_LOG_LINES = re.compile(r"terminate called|what\(\)|Assertion|Signal \(\d+\) received|Segmentation fault|"
                             r"error:|is not healthy|Traceback|Error")


def _short_log_line(line: str, limit: int = 300) -> str:
    """A Triton log line without its prefix (``E1207 03:03:23.19 3202 file.cc:642]``), quotes and the
    Python stack that a failed Python model appends (``\\n\\nAt:\\n ...``)."""
    line = re.sub(r"^[EWI]\d{4} [\d:.]+ \d+ [^\]]+\] ", "", line).strip()
    if len(line) > 1 and line[0] == line[-1] == '"':
        line = line[1:-1]
    line = line.split("\\n", 1)[0].strip()
    return line if len(line) <= limit else line[:limit - 3] + "..."


def describe_exit(code: int) -> str:
    """``"exited with code 1"`` / ``"was killed by SIGABRT"`` for a Popen return code."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _child_processes(pid: int) -> Dict[int, dict]:
    """Direct children of ``pid`` (Linux /proc): pid -> {args, state, start}."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, IndexError, ValueError):
            continue
        out[int(entry)] = {"args": args, "state": fields[0], "start": fields[19]}
    return out


# --------------------------------------------------------------------------- the server
class TritonServer:
    """One tritonserver process for ``repo`` on 127.0.0.1 (see the module docstring).

    Ports 0 pick free ports. ``log_file`` receives the server's output (default:
    a file in the server's temporary folder, removed at :meth:`stop`).
    """

    host = "127.0.0.1"

    def __init__(self, repo: str, http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                 server: Optional[str] = None, log_file: Optional[str] = None, verbose: bool = False,
                 extra_args: Sequence[str] = (), access: AdminAccess = AdminAccess()):
        self.repo = os.path.abspath(repo)
        self.install = find_server(server)
        self.models = repository_models(self.repo)
        check_backends(self.install, self.models)
        ports = [p or free_port(self.host) for p in (http_port, grpc_port, metrics_port)]
        if len(set(ports)) != 3:
            raise ServerError(f"HTTP, gRPC and metrics ports must differ, got {ports}")
        self.http_port, self.grpc_port, self.metrics_port = ports
        self.log_file = log_file
        self.verbose = verbose
        self.extra_args = list(extra_args)
        self.access = access
        self.proc: Optional[subprocess.Popen] = None
        self._tmp: Optional[str] = None
        self.shm_prefix = shm.region_prefix()   # renewed at every start
        self.restarts: List[float] = []         # monotonic times of supervise()'s restarts

    # ---------------------------------------------------------------- urls
    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self, backend_dir: str) -> List[str]:
        cmd = [self.install.binary, f"--model-repository={self.repo}", f"--backend-directory={backend_dir}",
               f"--http-address={self.host}", f"--http-port={self.http_port}",
               f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
               f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
               "--disable-auto-complete-config", "--exit-timeout-secs=10", "--allow-gpu-metrics=false",
               f"--log-verbose={1 if self.verbose else 0}",
               f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}", *self.access.flags()]
        libs = plugin_libraries(self.repo, self.models)
        if libs:
            cmd.append("--backend-config=tensorrt,plugins=" + ";".join(libs))
        return cmd + self.extra_args

    # ---------------------------------------------------------------- life cycle
    def start(self, timeout: float = 180.0) -> "TritonServer":
        """Start the server and wait until it is ready; on any failure nothing is left running
        and no region is left in ``/dev/shm``."""
        if self.proc is not None:
            raise ServerError("server already started")
        for port in (self.http_port, self.grpc_port, self.metrics_port):
            if _port_in_use(port, self.host):
                raise ServerError(f"port {port} on {self.host} is in use (another server?): choose other ports")
        shm.remove_stale_regions()
        self.shm_prefix = shm.region_prefix()
        self._tmp = tempfile.mkdtemp(prefix="mrcnn-triton-")
        try:
            backend_dir = (_standalone_backends(self.install, self._tmp) if self.install.standalone
                           else self.install.backends)
            log = self.log_file or os.path.join(self._tmp, "tritonserver.log")
            self.log_path = log
            try:
                out = open(log, "ab")
            except OSError as e:
                raise ServerError(f"cannot write the server log {log}: {e.strerror}") from None
            with out:
                self._log_start = out.tell()   # log_errors() reads this start's lines only
                # own session: a Ctrl-C in the terminal reaches us, and we stop the server in order
                self.proc = subprocess.Popen(self.command(backend_dir), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True,
                                             preexec_fn=_die_with_parent)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shm.make_private(self.shm_prefix)
            if self.proc.poll() is not None:
                raise ServerError(f"tritonserver {describe_exit(self.proc.returncode)} before becoming ready: "
                                  f"{self.log_errors()}")
            if self.ready():
                shm.make_private(self.shm_prefix)
                return
            time.sleep(0.25)
        raise ServerError(f"tritonserver not ready after {timeout:.0f} s: {self.log_errors()}")

    def ready(self) -> bool:
        """GET /v2/health/ready (HTTP 200)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_text(self) -> str:
        """The server's output since the last start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_start", 0))
                return f.read().decode(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_errors(self, limit: int = 3, fallback: bool = True) -> str:
        """The server's error lines since the last start, shortened and joined on one line; without
        any, its last lines (``fallback``) or "no error in its log". The CUDA messages that a server
        without a GPU logs at every start (:data:`BENIGN_LOG_LINES`) are left out."""
        lines = [ln.strip() for ln in self.log_text().splitlines() if ln.strip()]
        lines = [ln for ln in lines if not BENIGN_LOG_LINES.search(ln) and not ln.startswith(("+", "|"))
                 and not re.match(r"^\d+# ", ln)]   # tables, backtrace frames
        errors = [ln for ln in lines if re.match(r"^E\d{4}", ln) or FATAL_LOG_LINES.search(ln)]
        picked = errors[-limit:] or (lines[-limit:] if fallback else [])
        text = " | ".join(dict.fromkeys(_short_log_line(ln) for ln in picked)) or "no error in its log"
        return text if self.log_file is None else f"{text} (log: {self.log_file})"

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout`` s; removes the temporary folder and the server's
        ``/dev/shm`` regions. Returns the exit code."""
        code = None
        try:
            if self.proc is not None:
                if self.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.send_signal(signal.SIGTERM)
                    try:
                        self.proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(self.proc.pid, signal.SIGKILL)
                        self.proc.wait()
                code = self.proc.returncode
                self.proc = None
        finally:
            shm.remove_regions(self.shm_prefix)
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
        return code

    def wait(self) -> int:
        """Block until the server exits."""
        return self.proc.wait() if self.proc else 0

    def restart(self, timeout: float = 180.0) -> "TritonServer":
        """Stop and start again on the same ports (health is not ready in between)."""
        self.stop()
        return self.start(timeout)

    # ---------------------------------------------------------------- supervision
    def stub_processes(self) -> Dict[Tuple[int, str], str]:
        """The running Python-backend stubs of the server: (pid, start time) -> model name."""
        if self.proc is None:
            return {}
        out = {}
        for pid, info in _child_processes(self.proc.pid).items():
            args = info["args"]
            if args and os.path.basename(args[0]) == "triton_python_backend_stub" and info["state"] != "Z":
                model = os.path.basename(os.path.dirname(os.path.dirname(args[1]))) if len(args) > 1 else "?"
                out[(pid, info["start"])] = model
        return out

    def check(self, stubs: Dict[Tuple[int, str], str]) -> Optional[str]:
        """Why the server cannot serve any more (``None`` while it can): it exited, or one of
        ``stubs`` (from :meth:`stub_processes` when it was ready) is gone."""
        if self.proc is None:
            return "tritonserver is not running"
        if self.proc.poll() is not None:
            return f"tritonserver {describe_exit(self.proc.returncode)}: {self.log_errors(fallback=False)}"
        alive = self.stub_processes()
        dead = sorted({model for key, model in stubs.items() if key not in alive})
        if dead:
            return (f"the Python-backend stub of {', '.join(dead)} died (Triton would fail every request while "
                    f"reporting ready)")
        return None

    def supervise(self, timeout: float = 180.0, poll_s: float = 0.5, max_restarts: int = 3,
                  window_s: float = 600.0, notify=None) -> int:
        """Keep the started server serving until it is stopped from outside; returns its exit code then.

        Every ``poll_s`` seconds: the ``/dev/shm`` regions are made private; if a Python-backend
        stub died or the server crashed (any exit other than 0, SIGTERM or SIGINT), ``notify``
        (a callable taking one line) is told why and the server is restarted on the same ports.
        More than ``max_restarts`` restarts within ``window_s`` seconds raise :class:`ServerError`.
        """
        stubs = self.stub_processes()
        while True:
            code = self.proc.poll() if self.proc is not None else 0
            if code in (0, -signal.SIGTERM, -signal.SIGINT):
                return code
            shm.make_private(self.shm_prefix)
            problem = self.check(stubs)
            if problem:
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < window_s]
                if len(self.restarts) >= max_restarts:
                    raise ServerError(f"{problem}; not restarting ({len(self.restarts)} of at most {max_restarts} "
                                      f"restart(s) in {window_s:.0f} s used)")
                if notify:
                    notify(f"{problem}; restarting the server")
                self.restarts.append(now)
                self.restart(timeout)
                stubs = self.stub_processes()
                if notify:
                    notify(f"ready again: HTTP {self.http_url}, gRPC {self.grpc_url}")
            time.sleep(poll_s)

    def memory_mb(self) -> Dict[str, float]:
        if self.proc is None:
            return {}
        return process_tree_rss_mb(self.proc.pid)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

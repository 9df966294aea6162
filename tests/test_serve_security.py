"""The server as an attacker and an unlucky operator meet it: `mrcnn-triton serve` (the project's
way, a real tritonserver on free loopback ports) against the shared-memory attack that aborted
it, killed Python-backend stubs, every way it can stop (its /dev/shm regions must go), and
`mrcnn-triton infer` / `repo` / `serve` over generated bad inputs (one `error:` line, the
documented exit code, never a traceback).

References: the project's in-process pipeline (ONNX Runtime + custom ops) for correct results;
/dev/shm and /proc for what the server leaves behind.
"""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import model_repository, pipeline_documents, write_scenes

from mrcnn_trt.errors import UserError

pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install -e '.[serve]')")
from mrcnn_trt.serve import server as triton_server  # noqa: E402
from mrcnn_trt.serve import shm  # noqa: E402

try:
    triton_server.find_server()
except UserError as e:   # the wheel could not be installed (offline setup)
    pytest.skip(f"no tritonserver: {e}", allow_module_level=True)

from mrcnn_trt.serve.cli import main  # noqa: E402
from mrcnn_trt.serve.client import TritonClient  # noqa: E402
from mrcnn_trt.serve.repository import write_repository  # noqa: E402

START_TIMEOUT = 240


# --------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("serve_security")


@pytest.fixture(scope="module")
def repo(shipped_onnx, workdir):
    return model_repository(shipped_onnx, workdir, max_batch=4)


@pytest.fixture(scope="module")
def images(workdir):
    return write_scenes(workdir, 5, [(320, 240, "png"), (256, 300, "png"), (300, 200, "png")])


@pytest.fixture(scope="module")
def expected(shipped_onnx, images):
    """Detections per image from the in-process pipeline (what a healthy server answers)."""
    out = pipeline_documents(shipped_onnx, images)
    assert sum(len(d["detections"]) for d in out.values()) >= 3
    return out


class Serve:
    """`python -m mrcnn_trt.serve.cli serve REPO ...` on free ports; stderr goes to a file."""

    def __init__(self, repo, workdir, name, *extra):
        self.ports = [triton_server.free_port() for _ in range(3)]
        while len(set(self.ports)) < 3:
            self.ports = [triton_server.free_port() for _ in range(3)]
        self.err_path = str(workdir / f"{name}.stderr")
        cmd = [sys.executable, "-m", "mrcnn_trt.serve.cli", "serve", repo, "--http-port", str(self.ports[0]),
               "--grpc-port", str(self.ports[1]), "--metrics-port", str(self.ports[2]), *extra]
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=dict(os.environ, MRCNN_PROGRESS="0"))
        self.prefix = f"{shm.PREFIX}{self.proc.pid}_"

    @property
    def http(self):
        return f"127.0.0.1:{self.ports[0]}"

    @property
    def grpc(self):
        return f"127.0.0.1:{self.ports[1]}"

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("ready:"):
            line = self.proc.stdout.readline()
            assert line or self.proc.poll() is None, self.stderr()
        assert line.startswith("ready:"), self.stderr()
        return line

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def tritonserver_pid(self):
        kids = [p for p, info in triton_server._child_processes(self.proc.pid).items()
                if info["args"] and os.path.basename(info["args"][0]) == "tritonserver"]
        assert len(kids) == 1, kids
        return kids[0]

    def regions(self):
        return shm.regions(self.prefix)

    def stop(self, sig=signal.SIGINT, timeout=90):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.err.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.err.close()


def no_server_left(serve):
    """Nothing of a stopped `serve` remains: its process tree, its /dev/shm regions."""
    assert serve.proc.poll() is not None
    assert serve.regions() == [], serve.regions()
    assert not triton_server._child_processes(serve.proc.pid)


def ready(url):
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def request(url, path, body=None, headers=None, method=None):
    """(status, text) of an HTTP request to the server."""
    req = urllib.request.Request(f"http://{url}{path}", data=body, method=method or ("POST" if body is not None
                                                                                      else "GET"),
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def network_region(serve):
    """The /dev/shm region of the network model's stub (its third argument names it)."""
    names = [info["args"][2] for info in triton_server._child_processes(serve.tritonserver_pid()).values()
             if "mrcnn_network" in " ".join(info["args"])]
    found = [r for r in serve.regions() if os.path.basename(r) in names]
    assert len(found) == 1, (names, serve.regions())
    return found[0]


def shm_attack(url, region, image, headers=None):
    """Item 1 of the report: register the Python backend's own IPC region as a system shared-memory
    region, then ask for the ensemble's output into it. Returns the two (status, text) answers."""
    data = open(image, "rb").read()
    reg = request(url, "/v2/systemsharedmemory/region/evil/register",
                  json.dumps({"key": "/" + os.path.basename(region), "offset": 0, "byte_size": 1 << 20}).encode(),
                  headers)
    head = json.dumps({"inputs": [{"name": "IMAGE", "shape": [1, len(data)], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": len(data)}}],
                       "outputs": [{"name": "JSON", "parameters": {"shared_memory_region": "evil",
                                                                   "shared_memory_byte_size": 1 << 20}}]}).encode()
    inf = request(url, "/v2/models/mrcnn/infer", head + data,
                  dict(headers or {}, **{"Inference-Header-Content-Length": str(len(head))}))
    return reg, inf


def serves_correctly(url, images, expected, protocol="http"):
    with TritonClient(f"{protocol}://{url}") as c:
        for f in images[:2]:
            assert c.detect_file(f) == expected[f]


def wait_until(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# --------------------------------------------------------------------------- the default server
@pytest.fixture(scope="module")
def served(repo, workdir):
    s = Serve(repo, workdir, "default")
    try:
        s.ready_line = s.wait_ready()
        yield s
    finally:
        s.kill()


def test_shared_memory_attack_is_refused_and_the_server_keeps_serving(served, images, expected):
    """Item 1: the two requests that aborted tritonserver; the endpoints are off by default."""
    assert "endpoints: off" in served.ready_line
    regions = served.regions()
    assert len(regions) == 3   # one per Python model instance, named with our prefix
    for r in regions:          # private: the backend creates them 0644
        assert stat.S_IMODE(os.stat(r).st_mode) == 0o600, r
    region = network_region(served)
    (status, text), (istatus, itext) = shm_attack(served.http, region, images[0])
    assert status == 403 and "restricted" in text, (status, text)
    assert istatus in (400, 404) and "evil" in itext, (istatus, itext)
    # gRPC: the same family of endpoints is refused
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    g = grpcclient.InferenceServerClient(served.grpc)
    for call in (lambda: g.register_system_shared_memory("evil", "/" + os.path.basename(region), 1 << 20),
                 g.get_system_shared_memory_status, g.get_model_repository_index,
                 lambda: g.load_model("mrcnn"), lambda: g.unload_model("mrcnn"), g.get_log_settings,
                 g.get_trace_settings):
        with pytest.raises(InferenceServerException, match="restricted"):
            call()
    # HTTP: model control, repository index, logging and trace settings too; statistics and config stay open
    for path, body in [("/v2/repository/index", b"{}"), ("/v2/repository/models/mrcnn/unload", b"{}"),
                       ("/v2/repository/models/mrcnn/load", b"{}"), ("/v2/systemsharedmemory/status", None),
                       ("/v2/cudasharedmemory/status", None), ("/v2/logging", None), ("/v2/trace/setting", None),
                       ("/v2/logging", json.dumps({"log_file": "/tmp/x"}).encode())]:
        status, text = request(served.http, path, body)
        assert status == 403 and "restricted" in text, (path, status, text)
    assert request(served.http, "/v2/models/mrcnn/stats")[0] == 200
    assert request(served.http, "/v2/models/mrcnn/config")[0] == 200
    # the header that turns the endpoints off is on tritonserver's command line; it cannot be sent
    with open(f"/proc/{served.tritonserver_pid()}/cmdline", "rb") as f:
        flag = [a for a in f.read().split(b"\0") if a.startswith(b"--http-restricted-api=")][0]
    name, value = flag.split(b":", 1)[1].split(b"=", 1)
    assert b"\n" in name and b"\n" in value
    with socket.create_connection(("127.0.0.1", served.ports[0]), timeout=30) as sock:
        sock.sendall(b"GET /v2/systemsharedmemory/status HTTP/1.1\r\nHost: x\r\n" + name + b": " + value
                     + b"\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].split()
    assert status_line[1:2] in ([], [b"400"], [b"403"]), answer[:200]   # connection closed, or refused
    assert served.proc.poll() is None and ready(served.http)
    serves_correctly(served.http, images, expected)
    serves_correctly(served.grpc, images, expected, "grpc")


def test_infer_gives_per_image_results_and_exit_4(served, images, expected, workdir, capfd):
    """Item 13: one bad image in a request of three no longer fails the good ones."""
    bad = workdir / "not_an_image.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    fifo = workdir / "inputs" / "pipe.png"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for f in images[:2]:
        os.link(f, fifo.parent / os.path.basename(f))
    out = workdir / "infer_out"
    capfd.readouterr()
    assert main(["infer", f"http://{served.http}", images[0], str(bad), images[1], "-o", str(out),
                 "--batch", "3"]) == 4
    for f in images[:2]:
        stem = os.path.splitext(os.path.basename(f))[0]
        assert json.loads((out / f"{stem}.json").read_text()) == expected[f]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 2 and summary["failed"] == 1
    assert [e for e in summary["images"] if "error" in e][0]["image"] == str(bad)
    err = capfd.readouterr().err
    assert "not_an_image.png" in err and "not a readable image" in err and "Traceback" not in err
    # a folder holding a FIFO named like an image (it would block a reader) and two images, over gRPC,
    # printed as JSON lines
    assert main(["infer", f"grpc://{served.grpc}", str(fifo.parent), "--batch", "2"]) == 4
    cap = capfd.readouterr()
    docs = [json.loads(line) for line in cap.out.splitlines()]
    assert {d["image"] for d in docs} == {str(fifo.parent / os.path.basename(f)) for f in images[:2]}
    assert "pipe.png: not a regular file" in cap.err
    # every image bad: exit 1; the same name in two folders: two result files
    assert main(["infer", served.http, str(bad), "-o", str(workdir / "none")]) == 1
    assert main(["infer", served.http, images[0], str(fifo.parent / os.path.basename(images[0])),
                 "-o", str(workdir / "twice")]) == 0
    assert len([f for f in os.listdir(workdir / "twice") if f != "summary.json"]) == 2


def test_a_killed_stub_is_seen_and_the_server_restarted(served, images, expected):
    """Item 10: Triton kept answering ready while every request failed; now the stub's death takes
    the server out of ready and it is restarted, with fresh private regions and the old ones gone."""
    before = set(served.regions())
    stubs = {p: info for p, info in triton_server._child_processes(served.tritonserver_pid()).items()
             if "mrcnn_network" in " ".join(info["args"])}
    assert len(stubs) == 1
    os.kill(next(iter(stubs)), signal.SIGKILL)
    assert wait_until(lambda: not ready(served.http), 20), "health still reported ready after the stub died"
    assert wait_until(lambda: ready(served.http), START_TIMEOUT, step=0.5), served.stderr()
    assert "stub of mrcnn_network died" in served.stderr() and "restarting" in served.stderr()
    serves_correctly(served.http, images, expected)
    after = set(served.regions())
    assert len(after) == 3 and not (after & before)          # the dead server's regions were removed
    assert all(stat.S_IMODE(os.stat(r).st_mode) == 0o600 for r in after)


def test_ctrl_c_stops_the_server_and_removes_its_regions(served):
    """Last test on the default server: Ctrl-C (SIGINT) exits 0 and leaves nothing behind."""
    assert served.regions()
    assert served.stop(signal.SIGINT) == 0
    no_server_left(served)


# --------------------------------------------------------------------------- deliberately enabled endpoints
def test_admin_key_enables_the_endpoints_and_a_crash_is_survived(repo, workdir, images, expected):
    """With --admin-key-file the endpoints need the key (a key holder can register any region, the
    attack above included: it aborts or hangs Triton, hence off by default). A crashed tritonserver
    is restarted; a second crash beyond --max-restarts stops `serve` with one line naming the
    signal, and nothing is left behind."""
    key_file = workdir / "admin.key"
    key_file.write_text("k3y-" + "x" * 28 + "\n")
    key_file.chmod(0o644)
    assert main(["serve", repo, "--admin-key-file", str(key_file)]) == 2   # readable by others: refused
    key_file.chmod(0o600)
    s = Serve(repo, workdir, "keyed", "--admin-key-file", str(key_file), "--max-restarts", "1")
    try:
        assert "need header mrcnn-admin-key" in s.wait_ready()
        status = "/v2/systemsharedmemory/status"
        assert request(s.http, status)[0] == 403
        assert request(s.http, status, headers={"mrcnn-admin-key": "wrong" * 4})[0] == 403
        assert request(s.http, status, headers={"mrcnn-admin-key": "k3y-" + "x" * 28}) == (200, "[]")
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        g = grpcclient.InferenceServerClient(s.grpc)
        with pytest.raises(InferenceServerException, match="restricted"):
            g.get_system_shared_memory_status()
        g.get_system_shared_memory_status(headers={"triton-grpc-protocol-mrcnn-admin-key": "k3y-" + "x" * 28})
        g.close()
        first = s.tritonserver_pid()
        os.kill(first, signal.SIGABRT)   # what the attack did to it
        assert wait_until(lambda: "restarting the server" in s.stderr(), 60), s.stderr()
        err = s.stderr()
        assert "tritonserver was killed by SIGABRT" in err and "CudaDriverHelper" not in err
        assert wait_until(lambda: ready(s.http), START_TIMEOUT, step=0.5), s.stderr()
        assert s.tritonserver_pid() != first
        serves_correctly(s.http, images, expected)
        os.kill(s.tritonserver_pid(), signal.SIGKILL)   # beyond --max-restarts 1: stop, one line, clean
        assert s.proc.wait(90) == 2
        last = s.stderr().strip().splitlines()[-1]
        assert last.startswith("error: tritonserver was killed by SIGKILL") and "not restarting" in last
        assert "Traceback" not in s.stderr()
        no_server_left(s)
    finally:
        s.kill()


# --------------------------------------------------------------------------- other exit paths
def test_sigterm_and_a_failing_model_leave_no_regions(repo, workdir, shipped_onnx):
    """SIGTERM exits 0; a model that fails to load ends `serve` with one error line naming it (exit 2);
    both without a region, a stub or a server left."""
    s = Serve(repo, workdir, "term")
    try:
        s.wait_ready()
        assert len(s.regions()) == 3
        assert s.stop(signal.SIGTERM) == 0
        no_server_left(s)
    finally:
        s.kill()
    broken = str(workdir / "broken_repo")
    write_repository(shipped_onnx, broken)
    with open(os.path.join(broken, "mrcnn_postprocess", "1", "model.py"), "a") as f:
        f.write("\nraise RuntimeError('postprocess broken on purpose')\n")
    s = Serve(broken, workdir, "broken")
    try:
        assert s.proc.wait(START_TIMEOUT) == 2
        err = s.stderr()
        assert "Traceback" not in err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "broken on purpose" in lines[0], err
        assert "CudaDriverHelper" not in lines[0]
        no_server_left(s)
    finally:
        s.kill()


def test_regions_of_a_killed_run_are_removed_at_the_next_start(tmp_path):
    """shm.remove_stale_regions only removes our regions whose process is gone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = str(tmp_path)
    stale = os.path.join(folder, f"{shm.PREFIX}{dead.pid}_0a1b2c3d_region")
    alive = os.path.join(folder, f"{shm.region_prefix()}region")
    foreign = os.path.join(folder, "triton_python_backend_shm_region_x")
    for p in (stale, alive, foreign):
        open(p, "wb").close()
        os.chmod(p, 0o644)
    assert shm.make_private(shm.PREFIX, folder) == 2
    assert stat.S_IMODE(os.stat(foreign).st_mode) == 0o644
    assert shm.remove_stale_regions(folder) == [stale]
    assert os.path.exists(alive) and os.path.exists(foreign)


# --------------------------------------------------------------------------- no traceback for any input
def bad_inputs(tmp):
    """(argv, exit code, words in the error line): generated bad inputs of every subcommand."""
    tmp = str(tmp)
    d = lambda *p: os.path.join(tmp, *p)  # noqa: E731
    os.makedirs(d("empty_dir"), exist_ok=True)
    os.makedirs(d("badcfg", "m"), exist_ok=True)
    with open(d("badcfg", "m", "config.pbtxt"), "wb") as f:
        f.write(b"\xff\xfe\x00 not utf-8 backend: \"nonexistent\"")
    os.makedirs(d("pyrepo", "m"), exist_ok=True)
    with open(d("pyrepo", "m", "config.pbtxt"), "w") as f:
        f.write('backend: "python"\n')
    with open(d("img.png"), "wb") as f:
        f.write(b"x")
    with open(d("file"), "w") as f:
        f.write("a file")
    with open(d("garbage.onnx"), "wb") as f:
        f.write(os.urandom(300))
    with open(d("garbage.onnx.json"), "wb") as f:
        f.write(b"\xff\xfe not utf-8")
    with open(d("deep.onnx"), "wb") as f:
        f.write(b"x")
    with open(d("deep.onnx.json"), "w") as f:
        f.write("[" * 100000 + "]" * 100000)
    with open(d("key"), "w") as f:
        f.write("short\n")
    os.chmod(d("key"), 0o600)
    port = str(triton_server.free_port())
    return [
        (["infer", "http://127.0.0.1:notaport", d("img.png")], 2, "not a number from 1 to 65535"),
        (["infer", "grpc://127.0.0.1:notaport", d("img.png")], 2, "not a number from 1 to 65535"),
        (["infer", "http://127.0.0.1:99999", d("img.png")], 2, "not a number"),
        (["infer", "ftp://127.0.0.1:80", d("img.png")], 2, "unknown scheme"),
        (["infer", "http://user@host:80", d("img.png")], 2, "expected HOST:PORT"),
        (["infer", "http://bad host:80", d("img.png")], 2, "not a host name"),
        (["infer", "http://127.0.0.1:" + port, d("img.png")], 2, "cannot reach a Triton server"),
        (["infer", "grpc://127.0.0.1:" + port, d("img.png")], 2, "cannot reach a Triton server"),
        (["infer", "http://nonexistent.invalid:8000", d("img.png")], 2, "cannot reach a Triton server"),
        (["infer", "127.0.0.1:" + port, d("missing.png")], 2, "no such image file"),
        (["infer", "127.0.0.1:" + port, d("empty_dir")], 2, "no images"),
        (["infer", "127.0.0.1:" + port, d("img.png"), "--model", "../x"], 2, "--model"),
        (["infer", "127.0.0.1:" + port, d("img.png"), "--batch", "0"], 2, "--batch"),
        (["serve", d("missing_repo")], 2, "model repository not found"),
        (["serve", d("file")], 2, "is not a folder"),
        (["serve", d("empty_dir")], 2, "holds no model"),
        (["serve", d("badcfg")], 2, "a backend this server lacks"),
        (["serve", d("badcfg"), "--server", d("file")], 2, "not found or not executable"),
        (["serve", d("empty_dir"), "--http-port", "70000"], 2, "--http-port"),
        (["serve", d("empty_dir"), "--http-port", "1", "--grpc-port", "1"], 2, "ports must differ|holds no model"),
        (["serve", d("pyrepo"), "--log", d("empty_dir"), "--http-port", "0", "--grpc-port", "0", "--metrics-port",
          "0"], 2, "cannot write the server log"),
        (["serve", d("empty_dir"), "--admin-key-file", d("missing.key")], 2, "admin key file not found"),
        (["serve", d("empty_dir"), "--admin-key-file", d("key")], 2, "must be 16-256 characters"),
        (["serve", d("empty_dir"), "--max-restarts", "-1"], 2, "--max-restarts"),
        (["repo", d("garbage.onnx"), "-o", d("r")], 2, "sidecar"),
        (["repo", d("deep.onnx"), "-o", d("r")], 2, "sidecar"),
        (["repo", d("missing.onnx"), "-o", d("r")], 2, "model not found"),
        (["repo", d("empty_dir"), "-o", d("r")], 2, "model not found"),
        (["repo", d("file"), "-o", d("r")], 2, "expected an .onnx"),
        (["repo", d("garbage.onnx"), "-o", d("r"), "--name", "a/b"], 2, "model name|sidecar"),
        (["repo", d("garbage.onnx"), "-o", d("r"), "--mount", "rel"], 2, "absolute path|sidecar"),
        (["nosuchcommand"], 2, "invalid choice"),
        ([], 2, "required"),
    ]


def test_no_subcommand_prints_a_traceback_for_bad_inputs(tmp_path, capfd):
    """Every mrcnn-triton subcommand over generated bad inputs: one `error:` line (argparse: its usage
    and one error line), the documented exit code, never `Traceback`."""
    import re

    for argv, code, words in bad_inputs(tmp_path):
        capfd.readouterr()
        try:
            got = main(argv)
        except SystemExit as e:   # argparse
            got = e.code
        err = capfd.readouterr().err
        assert "Traceback" not in err and "Exception ignored" not in err, (argv, err)
        errors = [ln for ln in err.splitlines() if "error:" in ln]
        assert got == code and len(errors) == 1 and re.search(words, errors[0]), (argv, got, err)


def test_the_reported_url_in_a_real_process(tmp_path):
    """Item 12 exactly as reported, in a fresh process (where the client library's own destructor
    printed a second traceback)."""
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    for url in ("http://127.0.0.1:notaport", "grpc://127.0.0.1:notaport"):
        r = subprocess.run([sys.executable, "-m", "mrcnn_trt.serve.cli", "infer", url, str(img)],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, MRCNN_PROGRESS="0"))
        assert r.returncode == 2 and "Traceback" not in r.stderr and "Exception" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines() == [f"error: the port 'notaport' in '{url}' is not a number from 1 "
                                                 f"to 65535"]

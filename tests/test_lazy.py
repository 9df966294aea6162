"""mrcnn_trt.lazy: the one helper that imports heavy third-party modules at first use."""
import subprocess
import sys
import textwrap

import pytest

from mrcnn_trt import lazy
from mrcnn_trt.lazy import LazyModule, available, lazy_import

PROBE = "mrcnn_lazy_probe"


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A throw-away module that counts its imports, declared heavy for the test."""
    (tmp_path / f"{PROBE}.py").write_text(textwrap.dedent("""
        import builtins
        builtins.mrcnn_lazy_probe_imports = getattr(builtins, "mrcnn_lazy_probe_imports", 0) + 1
        ANSWER = 42
        def double(x):
            return 2 * x
    """))
    (tmp_path / f"{PROBE}_pkg").mkdir()
    (tmp_path / f"{PROBE}_pkg" / "__init__.py").write_text("")
    (tmp_path / f"{PROBE}_pkg" / "sub.py").write_text("VALUE = 'sub'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(lazy, "HEAVY", lazy.HEAVY | {PROBE, f"{PROBE}_pkg", "mrcnn_no_such_module"})
    for name in (PROBE, f"{PROBE}_pkg", f"{PROBE}_pkg.sub"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import builtins
    monkeypatch.setattr(builtins, "mrcnn_lazy_probe_imports", 0, raising=False)
    return builtins


def test_first_attribute_access_imports(probe):
    m = lazy_import(PROBE)
    assert isinstance(m, LazyModule)
    assert PROBE not in sys.modules and probe.mrcnn_lazy_probe_imports == 0
    assert "not loaded yet" in repr(m)
    assert m.ANSWER == 42                       # the import happens here
    assert PROBE in sys.modules and probe.mrcnn_lazy_probe_imports == 1
    assert m.double(21) == 42 and "double" in dir(m)
    assert probe.mrcnn_lazy_probe_imports == 1  # once
    assert "(loaded)" in repr(m)


def test_dotted_name_and_already_imported(probe):
    sub = lazy_import(f"{PROBE}_pkg.sub")
    assert f"{PROBE}_pkg.sub" not in sys.modules
    assert sub.VALUE == "sub"
    assert lazy_import(f"{PROBE}_pkg.sub") is sys.modules[f"{PROBE}_pkg.sub"]   # no stand-in once imported


def test_missing_module_message_carries_the_hint(probe):
    m = lazy_import("mrcnn_no_such_module", hint="pip install mrcnn-no-such-module")
    with pytest.raises(ModuleNotFoundError) as e:
        m.anything
    assert "mrcnn_no_such_module" in str(e.value) and "(pip install mrcnn-no-such-module)" in str(e.value)
    assert e.value.name == "mrcnn_no_such_module"
    with pytest.raises(ModuleNotFoundError) as e:     # without a hint: Python's own message
        lazy_import("mrcnn_no_such_module").anything
    assert str(e.value) == "No module named 'mrcnn_no_such_module'"


@pytest.mark.parametrize("name", ["numpy", "json", "PIL.Image", "mrcnn_trt.config", "torchish"])
def test_light_module_is_refused(name):
    with pytest.raises(ValueError, match="not a heavy module"):
        lazy_import(name)


def test_available(probe):
    assert available("json") and available(PROBE) and available(f"{PROBE}_pkg.sub")
    assert PROBE not in sys.modules                  # asked without importing it
    assert not available("mrcnn_no_such_module")
    assert not available("mrcnn_no_such_module.sub")   # a missing parent is "not available", not an error
    assert available("sys")                          # built in, in sys.modules


def test_real_heavy_module_loads_late():
    """onnxruntime through the helper: not imported until used, then the real module."""
    code = textwrap.dedent("""
        import sys
        from mrcnn_trt.lazy import lazy_import
        ort = lazy_import("onnxruntime")
        assert "onnxruntime" not in sys.modules
        providers = ort.get_available_providers()
        assert "onnxruntime" in sys.modules and "CPUExecutionProvider" in providers, providers
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

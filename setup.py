"""Build and install mrcnn-trt.

The import package ``mrcnn_trt`` is assembled from the top-level folders of
the repository (see ``PACKAGE_DIRS``): ``mrcnn_trt/`` holds the root package
(config, small utilities, command-line helpers), ``model/`` the PyTorch Mask
R-CNN, ``plugins/`` the custom ops (C++/CUDA sources + Python glue),
``export/``, ``engine/``, ``calib/``, ``eval/``, ``data/``, ``train/`` and
``serve/`` (Triton Inference Server) the tools built on top of the model.

The compiled CPU parts (the pybind11 module ``mrcnn_trt.plugins._cpu``, the
ONNX Runtime custom-op library, ``mrcnn_trt.calib._stats``) are built here by
``tools/native_ext.py``; TensorRT plugins and CUDA kernels are built by CMake
(``CMakeLists.txt``) or ``mrcnn-build-plugins`` because they need toolchains
that pip cannot provide. All of them are described once, in ``plugins/native.json``.
"""
import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "tools"))
import native_ext  # noqa: E402  (tools/native_ext.py: the extensions of plugins/native.json)

PACKAGE_DIRS = {
    "mrcnn_trt": "mrcnn_trt",
    "mrcnn_trt.model": "model",
    "mrcnn_trt.data": "data",
    "mrcnn_trt.train": "train",
    "mrcnn_trt.export": "export",
    "mrcnn_trt.plugins": "plugins",
    "mrcnn_trt.engine": "engine",
    "mrcnn_trt.calib": "calib",
    "mrcnn_trt.eval": "eval",
    "mrcnn_trt.eval.report": "eval/report",
    "mrcnn_trt.runtime": "runtime",
    "mrcnn_trt.apps": "apps",
    "mrcnn_trt.serve": "serve",
}


def op_packages():
    """``mrcnn_trt.plugins.<op>``: every op folder with Python parts (``plugins/<op>/__init__.py``:
    its reference, binding and standard-ONNX expansion), found so that a new op adds no line here."""
    root = os.path.join(HERE, "plugins")
    return [f"mrcnn_trt.plugins.{d}" for d in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, d, "__init__.py"))]


CONSOLE_SCRIPTS = [
    "mrcnn-demo = mrcnn_trt.apps.demo:main",
    "mrcnn-export = mrcnn_trt.export.cli:main",
    "mrcnn-build-engine = mrcnn_trt.engine.cli:main",
    "mrcnn-build-plugins = mrcnn_trt.engine.plugins_cli:main",
    "mrcnn-eval = mrcnn_trt.eval.cli:main",
    "mrcnn-make-dataset = mrcnn_trt.data.cli:main",
    "mrcnn-train = mrcnn_trt.train.cli:main",
    "mrcnn-calibrate = mrcnn_trt.calib.cli:main",
    "mrcnn-quickstart = mrcnn_trt.apps.quickstart:main",
    "mrcnn-triton = mrcnn_trt.serve.cli:main",
]

#: TensorRT for RTX (NVIDIA proprietary; installed from PyPI by the user, never redistributed):
#: ahead-of-time engine builds without a GPU (engine/README.md). tools/install_rtx.sh reads this list.
RTX_REQUIREMENTS = ["tensorrt-rtx-cu12-libs==1.7.1.116", "tensorrt-rtx-cu12-bindings==1.7.1.116"]


def ext_modules():
    """The pybind11 CPU kernels, the ORT custom-op library, the calibration statistics (plugins/README.md)."""
    return native_ext.ext_modules(HERE)


def _ext_modules_or_empty():
    try:
        return ext_modules()
    except ImportError:
        return []


setup(
    name="mrcnn-trt",
    version="0.1.0",
    description="PyTorch Mask R-CNN (pytorch-mask-rcnn layout) to validated ONNX / TensorRT engines",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS) + op_packages(),
    package_dir=PACKAGE_DIRS,
    package_data={"mrcnn_trt": ["assets/*"], "mrcnn_trt.plugins": ["*.so", "*.json"]},
    ext_modules=_ext_modules_or_empty(),
    cmdclass={"build_ext": native_ext.BuildExt},
    install_requires=[
        "torch==2.13.0",
        "numpy>=1.26",
        "pillow>=10",
        "onnx==1.23.2",
        "onnxruntime==1.32.0",
        "onnxscript>=0.5",
        "pycocotools==2.0.11",
        "cityscapesscripts==2.3.0",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "scipy>=1.11",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100"],
        "tensorrt": ["tensorrt", "cuda-python"],
        "rtx": RTX_REQUIREMENTS + ["cuda-python"],
        "gpu": ["onnxruntime-gpu"],
        # Triton clients; the server binary comes from `pip install --no-deps nvidia-pytriton==0.7.0`
        # (README "Serving"): its wheel declares numpy<2, which an extra here would enforce.
        "serve": ["tritonclient[http,grpc]>=2.51"],
        # mrcnn-eval --report (TIDE error analysis). tidecv 1.0.1 declares the GUI build
        # opencv-python; it needs cv2 only at import time and the headless build is enough:
        # tools/setup.sh installs these and then tidecv with --no-deps.
        "report": ["tidecv==1.0.1", "opencv-python-headless>=4.8", "seaborn>=0.13", "pandas>=2", "appdirs>=1.4"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS,
                  # runner backends of layers above mrcnn_trt.runtime, imported by its registry on demand
                  "mrcnn_trt.runners": ["tensorrt = mrcnn_trt.engine.runner"]},
)

#!/usr/bin/env bash
# Set up (if needed) and run the quick start: synthetic data -> shipped model ->
# ONNX export -> ONNX Runtime CPU (and TensorRT when present) -> COCO and
# Cityscapes AP + latency. Extra arguments go to mrcnn-quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/mrcnn-quickstart "$@"

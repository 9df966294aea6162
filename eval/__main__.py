"""``python -m mrcnn_trt.eval`` = ``mrcnn-eval`` (the form torchrun starts: ``torchrun ... -m mrcnn_trt.eval``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m mrcnn_trt.train`` = ``mrcnn-train`` (the form torchrun starts: ``torchrun ... -m mrcnn_trt.train``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Applications on top of every other package: ``mrcnn-demo`` and ``mrcnn-quickstart``."""

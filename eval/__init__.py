"""Evaluation: runners for every backend, evaluators (COCO, Cityscapes), ``mrcnn-eval``."""

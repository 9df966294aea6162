"""Training Mask R-CNN (docs/model.md §4): targets, losses, the loop, fine-tuning init, ``mrcnn-train``.

    from mrcnn_trt.train.loop import TrainOptions, train
    from mrcnn_trt.train.targets import build_rpn_targets, detection_targets, prepare_sample
    from mrcnn_trt.train.losses import rpn_class_loss, mrcnn_mask_loss   # ...
    from mrcnn_trt.train.finetune import init_from_other_classes

See ``train/SHAPES_MODEL.md`` for how the shipped shapes model was trained.
"""

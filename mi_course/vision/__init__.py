"""Vision helpers for Part I: synthetic stimuli, tuning measurements and the procedural image data set
the lite vision organisms (roles ``vision`` and ``vision-b``) are trained on.

    from mi_course.vision.stimuli import curve_stimulus, line_stimulus
    from mi_course.vision.tuning import radial_tuning_curve, curve_detector_report, union_over_cases
    from mi_course.vision.dataset import CLASSES, generate

Every image here is an RGB float tensor in [0, 1], shape (3, H, W) (one image) or (B, 3, H, W) (a batch):
the input contract of every course vision model, which normalizes internally.
"""

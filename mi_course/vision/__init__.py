"""Vision helpers for Part I: synthetic stimuli and tuning measurements.

    from mi_course.vision.stimuli import curve_stimulus, line_stimulus
    from mi_course.vision.tuning import radial_tuning_curve, curve_detector_report, union_over_cases
    from mi_course.vision.dataset_examples import dataset_examples      # top-k crops cut to the receptive field
    from mi_course.vision.natural_images import example_images          # Imagenette (full) or generated (lite)
    from mi_course.vision.shift import shift_kept                       # how much of a render survives a shift

The procedural image set the lite vision organisms (roles ``vision`` and ``vision-b``) are trained on lives
with the other organism-building code, in :mod:`mi_course.organisms.images`.

Every image here is an RGB float tensor in [0, 1], shape (3, H, W) (one image) or (B, 3, H, W) (a batch):
the input contract of every course vision model, which normalizes internally.
"""

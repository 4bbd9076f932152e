"""The neutral grade's constants: the per-pixel part of the training targets' grading.

The network's tone prior (:func:`basemap.model.unet.neutral_grade`) reproduces this curve and
the auto grader (:mod:`basemap.model.training.grader`) applies it, so both take it from here:
the weights render as trained only with these numbers (they are hashed into the ONNX cache key).
"""

#: Linear display gain at the grader's reference luminance (typical vegetated land).
EXPOSURE = 2.3
#: Chroma scale around luminance in linear light.
SATURATION = 1.2
#: Start of the highlight roll-off in linear display light.
KNEE = 0.6
#: Output floor and ceiling (8-bit): shadows keep detail, highlights never clip.
FLOOR = 3 / 255
TOP = 251 / 255

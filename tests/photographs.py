"""A few real photographs for parity checks, from scikit-image's bundled sample data (no download).

Random weights and random inputs can hide what photographs show (saturated activations, one class everywhere);
these are what `--parity-inputs` is for. Centre-cropped to a square, resized, normalised with ImageNet's mean and
standard deviation (what timm's classifiers expect), as (N, 3, size, size) float32.
"""

from __future__ import annotations

import numpy as np

PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket")  # a person, a cat, a cup, a launch
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def photographs(size: int = 224) -> np.ndarray:
    import skimage.data
    from PIL import Image

    batch = []
    for name in PHOTOGRAPHS:
        image = getattr(skimage.data, name)()
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = Image.fromarray(image[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BICUBIC)
        scaled = np.asarray(square, np.float32) / 255.0
        batch.append(((scaled - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.stack(batch).astype(np.float32)

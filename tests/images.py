"""Synthetic, photo-like test images (seeded), for the tests that hash real pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image


def photo_like_rgb(rng: np.random.Generator, height: int, width: int) -> NDArray[np.float64]:
    """Smooth gradients and blobs, a little texture, sensor-like noise (float RGB, unclipped)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= max(height - 1, 1)
    x /= max(width - 1, 1)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-120, 120, 3)
        base = 128 + a * x + b * y + c * x * y
        for _ in range(3):
            cy, cx = rng.uniform(0, 1, 2)
            radius = rng.uniform(0.05, 0.5)
            base += rng.uniform(-90, 90) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / radius**2)
        fy, fx = rng.uniform(1, 12, 2)
        base += rng.uniform(0, 25) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6))
        base += rng.normal(0, rng.uniform(0, 8), (height, width))
        channels.append(base)
    return np.dstack(channels)


def to_uint8(rgb: NDArray[Any]) -> NDArray[np.uint8]:
    clipped: NDArray[np.uint8] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return clipped


def write_photo(path: Path, seed: int, size: tuple[int, int] = (480, 640)) -> Path:
    """Write a photo-like image (height, width) to ``path`` (format from its suffix)."""
    pixels = to_uint8(photo_like_rgb(np.random.default_rng(seed), *size))
    if path.suffix in {".jpg", ".jpeg"}:
        Image.fromarray(pixels).save(path, quality=92)
    else:
        Image.fromarray(pixels).save(path)
    return path

"""Synthetic, photo-like test images (seeded), for the tests that hash real pixels."""

from __future__ import annotations

import struct
import zlib
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


def png_bytes(samples: NDArray[Any], color_type: int, bit_depth: int = 16) -> bytes:
    """Encode ``samples`` as a PNG Pillow cannot write: 16-bit colour, 16-bit grey with alpha.

    ``samples`` is (height, width) or (height, width, channels) for the PNG ``color_type``
    (0 grey, 2 RGB, 4 grey and alpha, 6 RGBA); no filtering, no interlacing.
    """
    height, width = samples.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = np.ascontiguousarray(samples.astype(dtype)).reshape(height, -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# Display P3's primaries adapted to D50, the colorants a phone's photos carry in their profile.
_P3_COLORANTS = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
_D50 = (0.9642, 1.0, 0.8249)


def icc_profile_wide_gamut(gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 display profile with Display P3 primaries and a pure gamma curve.

    A colour-managed decoder would move every pixel of a file carrying it; the registry's
    convention ignores it.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(values: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(value) for value in values)

    description = b"Wide gamut test profile"
    tags = [
        (b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(description) + 1) + description
         + b"\0" + b"\0" * 8 + b"\0" * 3 + b"\0" * 67),
        (b"cprt", b"text\0\0\0\0" + b"No copyright\0"),
        (b"wtpt", xyz(_D50)),
        (b"rXYZ", xyz(_P3_COLORANTS[0])),
        (b"gXYZ", xyz(_P3_COLORANTS[1])),
        (b"bXYZ", xyz(_P3_COLORANTS[2])),
    ]  # fmt: skip
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    data = b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(s15(value) for value in _D50)
        + b"\0" * 4
        + b"\0" * 16
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + table + data


def scene_rgb(
    seed: int,
    height: int = 480,
    width: int = 640,
    *,
    figure_x: float = 0.5,
    figure_seed: int | None = None,
) -> NDArray[np.uint8]:
    """A seeded photo-like scene with detail at every scale, so that its crops and regions are of
    PDQ quality 50 or more as a real photo's are: a lit background, furniture-like rectangles,
    a person-like figure (head and body) centred at ``figure_x`` of the width, texture and
    sensor noise. The same ``seed`` with another ``figure_x`` or ``figure_seed`` is another photo
    of the same room: the person has moved and is dressed otherwise."""
    rng = np.random.default_rng(seed)
    figure_rng = rng if figure_seed is None else np.random.default_rng(figure_seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= height - 1
    x /= width - 1
    image = np.dstack([110 + rng.uniform(-60, 60) * x + rng.uniform(-60, 60) * y for _ in range(3)])
    for _ in range(rng.integers(12, 20)):
        x0, y0 = rng.uniform(0, 0.9), rng.uniform(0, 0.9)
        w, h = rng.uniform(0.05, 0.35), rng.uniform(0.05, 0.35)
        inside = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
        image[inside] = rng.uniform(20, 235, 3) + rng.uniform(-25, 25) * (x[inside, None] - x0)
    for cy, rx, ry in ((0.3, 0.07, 0.1), (0.65, 0.16, 0.3)):
        inside = ((x - figure_x) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
        image[inside] = figure_rng.uniform(60, 220, 3)
    image += rng.uniform(4, 14) * np.sin(2 * np.pi * rng.uniform(20, 40) * (x + y))[..., None]
    image += rng.normal(0, 3, image.shape)
    return to_uint8(image)

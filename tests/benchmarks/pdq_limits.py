"""What PDQ matching catches and misses, measured on photo-like images generated here.

Run: ``.venv/bin/python -m tests.benchmarks.pdq_limits [--images 200] [--seed 1]`` (``make
limits``). Each generated photo is "registered" as the registry registers one: its 8 dihedral
hashes (``pdqhash.compute_dihedral``), provided its quality is at least 50. Each transformation
is then applied to the photo's pixels, the result hashed as a partner hashes an upload (its
original hash only, ``pdqhash.compute``), and its distance taken to the closest registered
variant, as ``hash_match`` does. A transformation is caught when that distance is 31 or less.

The last row, "unrelated photo", is each photo against another photo's variants: how often the
registry would match what it should not. Progress goes to stderr; a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from registry.pdq import MATCH_DISTANCE, MIN_QUALITY
from tests.images import photo_like_rgb, to_uint8

HEADER = (
    "| transformation | median bits | 10th-90th percentile | caught at 31 | "
    "caught, original hash only |"
)
SIZE = (480, 640)  # height, width

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _jpeg(quality: int) -> Transform:
    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")

    return apply


def _resize(scale: float) -> Transform:
    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        width, height = image.size
        return image.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)

    return apply


def _transpose(method: Image.Transpose) -> Transform:
    return lambda image, rng: image.transpose(method)


def _rotate(degrees: float) -> Transform:
    """A small rotation, same frame size, the corners filled in black (as most editors do)."""
    return lambda image, rng: image.rotate(degrees, resample=Image.Resampling.BICUBIC)


def _crop(share: float) -> Transform:
    """Keep the centre, cutting ``share`` of the width and of the height (half on each side)."""

    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        width, height = image.size
        dx, dy = round(width * share / 2), round(height * share / 2)
        return image.crop((dx, dy, width - dx, height - dy))

    return apply


def _border(share: float) -> Transform:
    """Black bars above and below adding ``share`` of the height (a letterbox)."""

    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        bar = round(image.size[1] * share / 2)
        return ImageOps.expand(image, border=(0, bar, 0, bar), fill=(0, 0, 0))

    return apply


_Enhancer = type[ImageEnhance.Brightness] | type[ImageEnhance.Contrast] | type[ImageEnhance.Color]


def _enhance(kind: _Enhancer, factor: float) -> Transform:
    return lambda image, rng: kind(image).enhance(factor)


def _greyscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _hue_shift(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    hue, saturation, value = image.convert("HSV").split()
    shifted = hue.point(lambda level: (level + 64) % 256)
    return Image.merge("HSV", (shifted, saturation, value)).convert("RGB")


def _caption(lines: int) -> Transform:
    """White text with a dark outline over the lower part of the frame, as a meme caption."""

    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        edited = image.copy()
        draw = ImageDraw.Draw(edited)
        width, height = edited.size
        font = ImageFont.load_default(size=height // 12)
        for line in range(lines):
            draw.text(
                (width * 0.06, height * (0.82 - 0.11 * line)),
                "WHEN THE WEEKEND FINALLY ARRIVES"[: 14 + 4 * line],
                font=font,
                fill=(255, 255, 255),
                stroke_width=3,
                stroke_fill=(0, 0, 0),
            )
        return edited

    return apply


def _region_replaced(share: float) -> Transform:
    """A mock AI edit: a central region of ``share`` of the area replaced by new content."""

    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        width, height = image.size
        side = share**0.5
        box_width, box_height = round(width * side), round(height * side)
        left, top = (width - box_width) // 2, (height - box_height) // 2
        patch = Image.fromarray(to_uint8(photo_like_rgb(rng, box_height, box_width)))
        edited = image.copy()
        edited.paste(patch, (left, top))
        return edited

    return apply


TRANSFORMS: list[tuple[str, Transform]] = [
    ("JPEG quality 90", _jpeg(90)),
    ("JPEG quality 70", _jpeg(70)),
    ("JPEG quality 50", _jpeg(50)),
    ("JPEG quality 20", _jpeg(20)),
    ("JPEG quality 5", _jpeg(5)),
    ("resized to 50%", _resize(0.5)),
    ("resized to 25%", _resize(0.25)),
    ("resized to 150%", _resize(1.5)),
    ("rotated 90°", _transpose(Image.Transpose.ROTATE_90)),
    ("rotated 180°", _transpose(Image.Transpose.ROTATE_180)),
    ("rotated 270°", _transpose(Image.Transpose.ROTATE_270)),
    ("flipped left-right", _transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    ("flipped top-bottom", _transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
    ("rotated 2°", _rotate(2)),
    ("rotated 5°", _rotate(5)),
    ("rotated 10°", _rotate(10)),
    ("rotated 20°", _rotate(20)),
    ("cropped 5%", _crop(0.05)),
    ("cropped 10%", _crop(0.10)),
    ("cropped 20%", _crop(0.20)),
    ("cropped 40%", _crop(0.40)),
    ("letterbox border 10%", _border(0.10)),
    ("letterbox border 25%", _border(0.25)),
    ("greyscale", _greyscale),
    ("brightness +30%", _enhance(ImageEnhance.Brightness, 1.3)),
    ("contrast -30%", _enhance(ImageEnhance.Contrast, 0.7)),
    ("saturation +50%", _enhance(ImageEnhance.Color, 1.5)),
    ("hue rotated 90°", _hue_shift),
    ("caption, 1 line", _caption(1)),
    ("caption, 3 lines", _caption(3)),
    ("mock AI edit, 10% of the area", _region_replaced(0.10)),
    ("mock AI edit, 25% of the area", _region_replaced(0.25)),
    ("mock AI edit, 50% of the area", _region_replaced(0.50)),
]
UNRELATED = "unrelated photo"


def _bits(vector: NDArray[Any]) -> NDArray[np.uint8]:
    return np.asarray(vector, dtype=np.uint8)


def _distance(query: NDArray[np.uint8], registered: NDArray[np.uint8]) -> tuple[int, int]:
    """(distance to the closest of the 8 registered variants, distance to the original)."""
    distances = np.count_nonzero(registered != query, axis=1)
    return int(distances.min()), int(distances[0])


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    closest: list[int]
    original_only: list[int]

    def markdown(self) -> str:
        closest = np.array(self.closest)
        original = np.array(self.original_only)
        low, high = np.percentile(closest, [10, 90])
        return (
            f"| {self.name} | {int(np.median(closest))} | {int(low)}-{int(high)} | "
            f"{np.mean(closest <= MATCH_DISTANCE):.0%} | "
            f"{np.mean(original <= MATCH_DISTANCE):.0%} |"
        )


def measure(count: int, seed: int) -> tuple[list[Row], int]:
    """Generate ``count`` registrable photos and measure every transformation on each."""
    rng = np.random.default_rng(seed)
    photos: list[Image.Image] = []
    registered: list[NDArray[np.uint8]] = []
    skipped = 0
    while len(photos) < count:
        pixels = to_uint8(photo_like_rgb(rng, *SIZE))
        vectors, quality = pdqhash.compute_dihedral(pixels)
        if quality < MIN_QUALITY:
            skipped += 1
            continue
        photos.append(Image.fromarray(pixels))
        registered.append(np.stack([_bits(vector) for vector in vectors]))
    rows = []
    for name, transform in TRANSFORMS:
        print(f"  {name}", file=sys.stderr)
        closest, original_only = [], []
        for photo, hashes in zip(photos, registered, strict=True):
            edited = np.asarray(transform(photo, rng).convert("RGB"))
            vector, _ = pdqhash.compute(edited)
            near, direct = _distance(_bits(vector), hashes)
            closest.append(near)
            original_only.append(direct)
        rows.append(Row(name, closest, original_only))
    closest, original_only = [], []
    for index, photo in enumerate(photos):
        other = registered[(index + 1) % len(registered)]
        vector, _ = pdqhash.compute(np.asarray(photo))
        near, direct = _distance(_bits(vector), other)
        closest.append(near)
        original_only.append(direct)
    rows.append(Row(UNRELATED, closest, original_only))
    return rows, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="photos to generate (200)")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args(argv)
    if arguments.images < 2:
        parser.error("--images must be at least 2")
    rows, skipped = measure(arguments.images, arguments.seed)
    print(
        f"{arguments.images} generated photos of {SIZE[1]}x{SIZE[0]} px (seed {arguments.seed}; "
        f"{skipped} below quality {MIN_QUALITY} skipped), each registered with its 8 dihedral "
        f"hashes; a match is a distance of {MATCH_DISTANCE} bits or less.\n"
    )
    print(HEADER)
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(row.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The edits the derived-view benchmark applies to photos, and the synthetic scenes it builds.

Every edit is a function of the pixels and an ``EditContext`` (a seeded generator and, for the
edits that paste another photo's region, a donor photo), so that a worker process can rebuild any
image of the benchmark from its description alone. None of this uses registry.derivatives: the
benchmark's edits must not know how the views they are measured against are cut.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Rgb = NDArray[np.uint8]

MEME_TEXT = ("WHEN YOU SEE IT", "NOBODY: ME AT 3AM")
CARRIER_TEXT = "ME WHEN THE WEEKEND ARRIVES"


@dataclass(frozen=True, slots=True)
class EditContext:
    rng: np.random.Generator
    donor: Rgb | None = None


Edit = Callable[[Rgb, EditContext], Rgb]


def _pil(rgb: Rgb) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(rgb))


def _rgb(image: Image.Image) -> Rgb:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


# ---- re-encoding and re-framing -------------------------------------------------------------


def jpeg(quality: int) -> Edit:
    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        buffer = io.BytesIO()
        _pil(rgb).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        return _rgb(Image.open(buffer))

    return apply


def resize(scale: float) -> Edit:
    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        return _rgb(_pil(rgb).resize(size, Image.Resampling.LANCZOS))

    return apply


def crop(left: float, top: float, right: float, bottom: float) -> Edit:
    """Cut these shares of the width (left, right) and of the height (top, bottom)."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        x0, x1 = round(width * left), width - round(width * right)
        y0, y1 = round(height * top), height - round(height * bottom)
        return np.ascontiguousarray(rgb[y0:y1, x0:x1])

    return apply


def centred_crop(share: float) -> Edit:
    """Cut ``share`` of the width and of the height, half on each side."""
    return crop(share / 2, share / 2, share / 2, share / 2)


def mirrored(then: Edit) -> Edit:
    return lambda rgb, context: then(np.ascontiguousarray(rgb[:, ::-1]), context)


def chain(*edits: Edit) -> Edit:
    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        for edit in edits:
            rgb = edit(rgb, context)
        return rgb

    return apply


def bars(vertical: float, horizontal: float, colour: tuple[int, int, int]) -> Edit:
    """Bars of ``colour`` adding ``vertical`` of the height above and below (half each) and
    ``horizontal`` of the width left and right."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        top, side = round(height * vertical / 2), round(width * horizontal / 2)
        out = np.empty((height + 2 * top, width + 2 * side, 3), np.uint8)
        out[:] = colour
        out[top : top + height, side : side + width] = rgb
        return out

    return apply


def blurred_square(rgb: Rgb, context: EditContext) -> Rgb:
    """The photo centred on a square of a blurred, enlarged copy of itself (a "blur fill")."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    scale = side / min(height, width)
    background = _pil(rgb).resize((round(width * scale), round(height * scale)))
    left, top = (background.width - side) // 2, (background.height - side) // 2
    background = background.crop((left, top, left + side, top + side))
    background = background.filter(ImageFilter.GaussianBlur(side / 30))
    background.paste(_pil(rgb), ((side - width) // 2, (side - height) // 2))
    return _rgb(background)


def rotate(degrees: float, *, corners_cropped: bool) -> Edit:
    """Turn by ``degrees`` in the same frame; the empty corners black, or cut away to the
    largest centred box of the photo's aspect ratio that has none."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        turned = _rgb(_pil(rgb).rotate(degrees, resample=Image.Resampling.BICUBIC))
        if not corners_cropped:
            return turned
        angle = math.radians(abs(degrees))
        cos, sin = math.cos(angle), math.sin(angle)
        scale = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
        keep_w, keep_h = math.floor(width * scale), math.floor(height * scale)
        x0, y0 = (width - keep_w) // 2, (height - keep_h) // 2
        return np.ascontiguousarray(turned[y0 : y0 + keep_h, x0 : x0 + keep_w])

    return apply


# ---- text, logos and screenshots ------------------------------------------------------------


def caption_band(
    text: str,
    *,
    lines: int = 1,
    top: bool = True,
    band: tuple[int, int, int] = (255, 255, 255),
    ink: tuple[int, int, int] = (0, 0, 0),
) -> Edit:
    """A band of one colour with ``text`` on it, added above (or below) the photo."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        line = max(24, round(height * 0.13))
        canvas = Image.new("RGB", (width, height + line * lines), band)
        canvas.paste(_pil(rgb), (0, 0 if not top else line * lines))
        draw = ImageDraw.Draw(canvas)
        font = _font(round(line * 0.55))
        for index in range(lines):
            words = text if index == 0 else MEME_TEXT[1]
            y = (0 if top else height) + line * index + line // 2
            draw.text((width // 2, y), words, fill=ink, font=font, anchor="mm")
        return _rgb(canvas)

    return apply


def meme_text(top_text: str, bottom_text: str) -> Edit:
    """White text with a black outline over the top and the bottom of the photo."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        image = _pil(rgb).copy()
        width, height = image.size
        draw = ImageDraw.Draw(image)
        font = _font(round(min(height / 9, width / 12)))
        stroke = max(2, round(height / 120))
        for text, y in ((top_text, height * 0.1), (bottom_text, height * 0.88)):
            draw.text(
                (width / 2, y),
                text,
                fill=(255, 255, 255),
                font=font,
                anchor="mm",
                stroke_width=stroke,
                stroke_fill=(0, 0, 0),
            )
        return _rgb(image)

    return apply


@cache
def _logo() -> Image.Image:
    """A made-up brand mark: a red rounded square, a white ring and three letters."""
    logo = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle((0, 0, 239, 239), radius=44, fill=(214, 48, 49, 255))
    draw.ellipse((36, 24, 204, 192), outline=(255, 255, 255, 255), width=18)
    draw.text((120, 210), "RMP", fill=(255, 255, 255, 255), font=_font(44), anchor="mm")
    return logo


def logo(share: float = 0.18) -> Edit:
    """The brand mark, ``share`` of the photo's width, in the bottom-right corner."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        image = _pil(rgb).convert("RGBA")
        side = max(16, round(image.width * share))
        mark = _logo().resize((side, side), Image.Resampling.LANCZOS)
        margin = round(image.width * 0.03)
        image.alpha_composite(mark, (image.width - side - margin, image.height - side - margin))
        return _rgb(image)

    return apply


def screenshot(*, dark: bool) -> Edit:
    """The photo as a phone shows it in a social app: status bar, header with an avatar and a
    name, the photo at the screen's width, a row of icons and a caption under it."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        screen_w = width
        screen_h = round(screen_w * 2.1)
        photo_h = min(height, round(screen_h * 0.62))
        photo = _pil(rgb)
        if photo_h < height:
            photo = photo.resize((round(width * photo_h / height), photo_h))
        background, ink = (
            ((18, 18, 18), (240, 240, 240)) if dark else ((255, 255, 255), (20, 20, 20))
        )
        canvas = Image.new("RGB", (screen_w, screen_h), background)
        draw = ImageDraw.Draw(canvas)
        unit = screen_w / 30
        draw.text((unit, unit * 0.8), "9:41", fill=ink, font=_font(round(unit * 1.1)))
        draw.rectangle((screen_w - unit * 4, unit * 0.8, screen_w - unit, unit * 1.7), fill=ink)
        header = unit * 3
        draw.ellipse((unit, header, unit * 4, header + unit * 3), fill=(200, 120, 90))
        draw.text(
            (unit * 5, header + unit * 0.6),
            "someone.example",
            fill=ink,
            font=_font(round(unit * 1.2)),
        )
        top = round(header + unit * 4)
        canvas.paste(photo, ((screen_w - photo.width) // 2, top))
        icons = top + photo.height + unit
        for index in range(3):
            x = unit + index * unit * 3
            draw.ellipse((x, icons, x + unit * 2, icons + unit * 2), outline=ink, width=3)
        draw.text((unit, icons + unit * 3), "Liked by 23 others", fill=ink, font=_font(round(unit)))
        draw.text(
            (unit, icons + unit * 4.8),
            "someone.example  the weekend!",
            fill=ink,
            font=_font(round(unit)),
        )
        draw.rectangle(
            (screen_w * 0.35, screen_h - unit, screen_w * 0.65, screen_h - unit * 0.6), fill=ink
        )
        return _rgb(canvas)

    return apply


# ---- AI-edit proxies ------------------------------------------------------------------------

Box = tuple[int, int, int, int]


def body_box(width: int, height: int, share: float, *, tall: bool | str) -> Box:
    """The region a body edit covers: ``share`` of the area, centred with the photo's aspect
    ratio, or (``tall``) a box taller than wide, low in the frame, as a standing body, or
    (``tall="below_face"``) a centred box under the top quarter of the frame, where the face and
    the top of the background stay untouched, as an "undress" edit leaves them."""
    if tall == "below_face":
        box_h = min(round(height * 0.75), round(height * math.sqrt(share) * 1.2))
        box_w = min(width, round(share * width * height / box_h))
        x0, y0 = (width - box_w) // 2, round(height * 0.25)
        return x0, y0, x0 + box_w, min(height, y0 + box_h)
    if not tall:
        side = math.sqrt(share)
        box_w, box_h = round(width * side), round(height * side)
        x0, y0 = (width - box_w) // 2, (height - box_h) // 2
        return x0, y0, x0 + box_w, y0 + box_h
    box_h = min(round(height * math.sqrt(share) / 0.7), round(height * 0.92))
    box_w = min(width, round(share * width * height / box_h))
    x0 = (width - box_w) // 2
    y0 = round((height - box_h) * 0.8)
    return x0, y0, x0 + box_w, y0 + box_h


def inpainted(share: float, *, tall: bool | str = False) -> Edit:
    """The body region regenerated from its surroundings by OpenCV's inpainting (Telea), at
    most 640 px a side as generative editors work at a reduced size, pasted back."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = body_box(width, height, share, tall=tall)
        factor = max(1.0, max(height, width) / 640)
        small_w, small_h = round(width / factor), round(height / factor)
        small = _rgb(_pil(rgb).resize((small_w, small_h), Image.Resampling.LANCZOS))
        mask = np.zeros((small_h, small_w), np.uint8)
        sx0, sy0 = math.floor(x0 / factor), math.floor(y0 / factor)
        sx1, sy1 = math.ceil(x1 / factor), math.ceil(y1 / factor)
        mask[sy0:sy1, sx0:sx1] = 255
        filled = np.asarray(cv2.inpaint(small, mask, 5, cv2.INPAINT_TELEA), np.uint8)
        region = _pil(filled).resize((width, height), Image.Resampling.BICUBIC)
        out = rgb.copy()
        out[y0:y1, x0:x1] = np.asarray(region)[y0:y1, x0:x1]
        return out

    return apply


SKIN = ((224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (241, 194, 125))


def textured(share: float, *, tall: bool | str = False) -> Edit:
    """The body region replaced by a skin-like texture: one tone, soft shading, grain."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = body_box(width, height, share, tall=tall)
        tone = np.array(SKIN[int(context.rng.integers(len(SKIN)))], np.float64)
        ys, xs = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float64)
        cx, cy = (x1 - x0) / 2, (y1 - y0) / 2
        shade = 1 - 0.35 * (((xs - cx) / max(cx, 1)) ** 2 + 0.3 * ((ys - cy) / max(cy, 1)) ** 2)
        grain = context.rng.normal(0, 10, (y1 - y0, x1 - x0, 1))
        out = rgb.copy()
        out[y0:y1, x0:x1] = np.clip(tone * shade[..., None] + grain, 0, 255).astype(np.uint8)
        return out

    return apply


def donor_region(share: float, *, tall: bool | str = False) -> Edit:
    """The body region replaced by the same region of another photo (the donor), resized."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        assert context.donor is not None
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = body_box(width, height, share, tall=tall)
        donor_h, donor_w = context.donor.shape[:2]
        d0, e0, d1, e1 = body_box(donor_w, donor_h, share, tall=tall)
        patch = _pil(context.donor[e0:e1, d0:d1]).resize((x1 - x0, y1 - y0))
        out = rgb.copy()
        out[y0:y1, x0:x1] = np.asarray(patch)
        return out

    return apply


# ---- a room with people in it ---------------------------------------------------------------


def people(count: int) -> Edit:
    """``count`` people-like figures (head, torso, arms, legs, a shadow) standing at random
    places in the scene, of random sizes and clothes."""

    def apply(rgb: Rgb, context: EditContext) -> Rgb:
        rng = context.rng
        image = _pil(rgb).convert("RGBA")
        width, height = image.size
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for _ in range(count):
            tall = height * rng.uniform(0.35, 0.75)
            cx, foot = width * rng.uniform(0.12, 0.88), height * rng.uniform(0.62, 0.97)
            top = foot - tall
            skin = (*SKIN[int(rng.integers(len(SKIN)))], 255)
            shirt = (*(int(v) for v in rng.integers(20, 235, 3)), 255)
            trousers = (*(int(v) for v in rng.integers(10, 90, 3)), 255)
            unit = tall / 10
            draw.ellipse(
                (cx - unit * 1.6, foot - unit * 0.3, cx + unit * 1.6, foot + unit * 0.3),
                fill=(0, 0, 0, 90),
            )
            draw.rectangle((cx - unit * 0.9, top + unit * 5.4, cx - unit * 0.15, foot), trousers)
            draw.rectangle((cx + unit * 0.15, top + unit * 5.4, cx + unit * 0.9, foot), trousers)
            draw.rounded_rectangle(
                (cx - unit * 1.3, top + unit * 1.7, cx + unit * 1.3, top + unit * 5.6),
                radius=unit * 0.5,
                fill=shirt,
            )
            for side in (-1, 1):
                arm = cx + side * unit * 1.3
                draw.rectangle(
                    (
                        min(arm, arm + side * unit * 0.6),
                        top + unit * 1.9,
                        max(arm, arm + side * unit * 0.6),
                        top + unit * 5.2,
                    ),
                    shirt,
                )
            draw.ellipse((cx - unit * 0.75, top, cx + unit * 0.75, top + unit * 1.8), skin)
        layer = layer.filter(ImageFilter.GaussianBlur(max(1.0, width / 500)))
        image.alpha_composite(layer)
        out = _rgb(image).astype(np.int16) + rng.normal(0, 3, (height, width, 1)).astype(np.int16)
        return np.clip(out, 0, 255).astype(np.uint8)

    return apply

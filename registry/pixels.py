"""The pixels a PDQ hash is computed from: one decoding convention for the browser and partners.

A photo registered in a person's browser only protects them if a partner's check, hashing the same
file with ``pdqhash``, gets the same bits. Both sides therefore turn a file into 8-bit RGB pixels
by the same rules, which are those of Chromium's ``createImageBitmap(file, {colorSpaceConversion:
"none", premultiplyAlpha: "none", imageOrientation: "from-image"})`` drawn onto a canvas filled
with opaque white (registry/static/registry/hash-worker.js):

- **Orientation**: the EXIF orientation is applied (JPEG, PNG, AVIF), except in WebP files,
  whose orientation tag browsers do not apply.
- **Colour**: no colour management; an embedded ICC profile is ignored.
- **Transparency**: composited over opaque white, in premultiplied 8-bit arithmetic:
  ``round(c * a / 255) + 255 - a`` for each channel ``c`` and alpha ``a``. A fully transparent
  pixel is white whatever colour it stores; palette and ``tRNS`` transparency count as alpha.
- **Bit depth**: 16-bit samples keep their high byte (``v >> 8``), colour and alpha alike.
- **CMYK** (JPEG, stored inverted as Adobe writes it): ``r = (255 - c) * (255 - k) // 255``, and
  so on for green and blue, truncated.
- **Animation**: the first frame.

Pure Pillow and numpy, no Django: the partner client imports it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

_SIXTEEN_BIT_GREY = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}

Pixels = NDArray[np.uint8]


def pdq_pixels(image: Image.Image) -> Pixels:
    """Return the (height, width, 3) 8-bit RGB pixels that ``image`` is hashed from.

    ``image`` is an opened Pillow image (its first frame); see the module docstring for the rules.
    """
    if image.format != "WEBP":
        image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_GREY:
        grey = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.dstack([grey, grey, grey]))
    if image.mode == "CMYK":
        ink = 255 - np.asarray(image).astype(np.int64)
        cmyk_rgb: Pixels = (ink[..., :3] * ink[..., 3:] // 255).astype(np.uint8)
        return np.ascontiguousarray(cmyk_rgb)
    if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    rgba = np.asarray(image.convert("RGBA")).astype(np.int64)
    alpha = rgba[..., 3:]
    # round(c * a / 255) in integers; c * a / 255 is never exactly halfway, as 255 is odd.
    premultiplied = (rgba[..., :3] * alpha * 2 + 255) // 510
    over_white: Pixels = (premultiplied + 255 - alpha).astype(np.uint8)
    return np.ascontiguousarray(over_white)

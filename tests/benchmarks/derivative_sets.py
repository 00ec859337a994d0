"""What the derived-view benchmark registers, the edits it measures, and its distractors.

An image of the benchmark is described by a ``Spec`` (a base image and an edit, with a seed and
a donor when the edit needs them), small enough to send to a worker process, which rebuilds the
pixels with ``render``. The bases are real photographs (tests/photos.py), generated photo-like
images (tests/images.py), photos that carry a logo or a caption, and synthetic rooms with
people-like figures in them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pdqhash
from PIL import Image

from registry.pdq import MIN_QUALITY
from tests.benchmarks import derivative_edits as photo_edits
from tests.images import photo_like_rgb, to_uint8
from tests.photos import SERIES_OF, Photo

Rgb = photo_edits.Rgb

# The measured edits, in the table's order. A name ending in "*" takes a donor photo.
EDITS: tuple[tuple[str, photo_edits.Edit], ...] = (
    ("the photo itself", lambda rgb, context: rgb),
    ("JPEG quality 20", photo_edits.jpeg(20)),
    ("resized to 50%", photo_edits.resize(0.5)),
    ("resized to 25%", photo_edits.resize(0.25)),
    ("centred crop 2%", photo_edits.centred_crop(0.02)),
    ("centred crop 5%", photo_edits.centred_crop(0.05)),
    ("centred crop 10%", photo_edits.centred_crop(0.10)),
    ("centred crop 20%", photo_edits.centred_crop(0.20)),
    ("centred crop 30%", photo_edits.centred_crop(0.30)),
    ("corner crop 5% (top left)", photo_edits.crop(0.05, 0.05, 0, 0)),
    ("corner crop 10% (bottom right)", photo_edits.crop(0, 0, 0.10, 0.10)),
    ("corner crop 20% (top right)", photo_edits.crop(0, 0.20, 0.20, 0)),
    ("corner crop 30% (bottom left)", photo_edits.crop(0.30, 0, 0, 0.30)),
    ("asymmetric crop 3/6/9/2%", photo_edits.crop(0.03, 0.06, 0.09, 0.02)),
    ("asymmetric crop 12% left, 4% top", photo_edits.crop(0.12, 0.04, 0, 0)),
    ("bottom 15% cut off", photo_edits.crop(0, 0, 0, 0.15)),
    ("letterbox, black bars 12%", photo_edits.bars(0.12, 0, (0, 0, 0))),
    ("letterbox, white bars 20%", photo_edits.bars(0.20, 0, (255, 255, 255))),
    ("pillarbox, blue bars 15%", photo_edits.bars(0, 0.15, (20, 40, 200))),
    ("grey frame 8% all round", photo_edits.bars(0.08, 0.08, (128, 128, 128))),
    ("on a blurred copy of itself", photo_edits.blurred_square),
    ("caption band above, 1 line", photo_edits.caption_band(photo_edits.MEME_TEXT[0])),
    (
        "caption band below, 2 lines, black",
        photo_edits.caption_band(
            photo_edits.MEME_TEXT[0], lines=2, top=False, band=(0, 0, 0), ink=(255, 255, 255)
        ),
    ),
    ("meme text over the photo", photo_edits.meme_text(*photo_edits.MEME_TEXT)),
    ("logo in a corner", photo_edits.logo()),
    ("rotated 1°, corners cropped", photo_edits.rotate(1, corners_cropped=True)),
    ("rotated 2°, corners cropped", photo_edits.rotate(-2, corners_cropped=True)),
    ("rotated 3°, corners cropped", photo_edits.rotate(3, corners_cropped=True)),
    ("rotated 5°, corners cropped", photo_edits.rotate(-5, corners_cropped=True)),
    ("rotated 8°, corners cropped", photo_edits.rotate(8, corners_cropped=True)),
    ("rotated 2°, black corners", photo_edits.rotate(2, corners_cropped=False)),
    ("rotated 5°, black corners", photo_edits.rotate(-5, corners_cropped=False)),
    ("rotated 10°, black corners", photo_edits.rotate(10, corners_cropped=False)),
    (
        "repost: crop 2%, 60% size, JPEG 70",
        photo_edits.chain(
            photo_edits.centred_crop(0.02), photo_edits.resize(0.6), photo_edits.jpeg(70)
        ),
    ),
    ("phone screenshot, light app", photo_edits.screenshot(dark=False)),
    ("phone screenshot, dark app", photo_edits.screenshot(dark=True)),
    ("mirrored and cropped 10%", photo_edits.mirrored(photo_edits.centred_crop(0.10))),
    ("AI edit: inpainted, 20%, centred", photo_edits.inpainted(0.20)),
    ("AI edit: inpainted, 30%, centred", photo_edits.inpainted(0.30)),
    ("AI edit: inpainted, 40%, centred", photo_edits.inpainted(0.40)),
    ("AI edit: inpainted, 30%, tall body box", photo_edits.inpainted(0.30, tall=True)),
    ("AI edit: inpainted, 40%, tall body box", photo_edits.inpainted(0.40, tall=True)),
    ("AI edit: inpainted, 20%, below the face", photo_edits.inpainted(0.20, tall="below_face")),
    ("AI edit: inpainted, 30%, below the face", photo_edits.inpainted(0.30, tall="below_face")),
    ("AI edit: inpainted, 40%, below the face", photo_edits.inpainted(0.40, tall="below_face")),
    ("AI edit: skin texture, 30%, below the face", photo_edits.textured(0.30, tall="below_face")),
    (
        "AI edit: another photo's region, 30%, below the face*",
        photo_edits.donor_region(0.30, tall="below_face"),
    ),
    ("AI edit: skin texture, 30%, centred", photo_edits.textured(0.30)),
    ("AI edit: skin texture, 30%, tall body box", photo_edits.textured(0.30, tall=True)),
    ("AI edit: another photo's region, 20%, centred*", photo_edits.donor_region(0.20)),
    ("AI edit: another photo's region, 30%, centred*", photo_edits.donor_region(0.30)),
    (
        "AI edit: another photo's region, 30%, tall body box*",
        photo_edits.donor_region(0.30, tall=True),
    ),
)
EDIT_BY_NAME = dict(EDITS)
EDIT_NAMES = tuple(name for name, _ in EDITS)

# The edits applied to the photos that are NOT registered, to make distractors.
DISTRACTOR_EDITS = (
    "centred crop 5%",
    "centred crop 20%",
    "corner crop 10% (bottom right)",
    "asymmetric crop 3/6/9/2%",
    "letterbox, black bars 12%",
    "pillarbox, blue bars 15%",
    "rotated 3°, corners cropped",
    "rotated 5°, black corners",
    "JPEG quality 20",
    "repost: crop 2%, 60% size, JPEG 70",
    "phone screenshot, light app",
    "mirrored and cropped 10%",
    "AI edit: inpainted, 30%, tall body box",
)
SHARED_CAPTION_EDITS = (
    "caption band above, 1 line",
    "caption band below, 2 lines, black",
    "meme text over the photo",
)
CARRIER_CAPTION = photo_edits.caption_band(photo_edits.CARRIER_TEXT)

# Registered real photos: one of each near-identical series (its partners are distractors),
# then photos of people and of everything else. The edits are measured on the first MEASURED
# (and on the generated photos); the others are registered for the false-match count only.
REGISTERED_PHOTOS = (
    "left01",
    "aloeL",
    "motorcycle_left",
    "rubberwhale1",
    "basketball1",
    "leuvenA",
    "graf1",
    "Blender_Suzanne1",
    "pic2",
    "ela_original",
    "aero1",
    "left",
    "box",
    "astronaut",
    "grace_hopper",
    "messi5",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "china",
    "flower",
    "quokka",
    "baboon",
    "squirrel_cls",
    "starry_night",
    "fruits",
)
LOGO_CARRIERS = ("home", "building", "plant")  # registered with the logo in a corner
CAPTION_CARRIERS = ("butterfly", "orange")  # registered with a caption band
MEASURED = 20
ROOM_BACKGROUNDS = ("stuff", "scenetext06")  # real rooms; two more are generated
ROOM_MEMBERS = 15  # per room: the first registered, the others distractors
GENERATED_SIZE = (480, 640)
DISTRACTOR_SIZES = ((240, 320), (360, 480), (300, 400), (480, 360))


@dataclass(frozen=True, slots=True)
class Spec:
    """One image: ``base`` is ("photo", name), ("generated", seed, height, width),
    ("logo", name), ("caption", name) or ("room", background, member); then an edit."""

    base: tuple[str | int, ...]
    edit: str | None = None
    donor: str | None = None
    kind: str = ""  # the distractor kind it is counted under
    source: str = field(default="", compare=False)  # what the base is, in words

    @property
    def label(self) -> str:
        if self.base[0] in {"logo", "caption"}:
            return f"{self.source} with the {'logo' if self.base[0] == 'logo' else 'caption'}"
        return f"{self.source}: {self.edit.rstrip('*')}" if self.edit else self.source

    def seed(self) -> int:
        text = repr((self.base, self.edit, self.donor)).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


class Renderer:
    """Rebuilds any Spec's pixels from the corpus (held by the worker processes)."""

    def __init__(self, photos: dict[str, Photo], max_side: int | None) -> None:
        self.photos = {name: _fit(photo.rgb, max_side) for name, photo in photos.items()}
        self.max_side = max_side

    def base(self, base: tuple[str | int, ...]) -> Rgb:
        kind = base[0]
        if kind == "photo":
            return self.photos[str(base[1])]
        if kind == "generated":
            _, seed, height, width = base
            rng = np.random.default_rng(int(seed))
            return _fit(to_uint8(photo_like_rgb(rng, int(height), int(width))), self.max_side)
        if kind == "logo":
            return photo_edits.logo()(
                self.photos[str(base[1])], photo_edits.EditContext(np.random.default_rng(0))
            )
        if kind == "caption":
            photo = self.photos[str(base[1])]
            return CARRIER_CAPTION(photo, photo_edits.EditContext(np.random.default_rng(0)))
        if kind == "room":
            background, member = base[1], int(base[2])
            room = (
                self.photos[str(background)]
                if not str(background).startswith("seed:")
                else self.base(("generated", int(str(background)[5:]), *GENERATED_SIZE))
            )
            rng = np.random.default_rng([int.from_bytes(str(background).encode(), "big"), member])
            return photo_edits.people(1 + member % 3)(room, photo_edits.EditContext(rng))
        raise ValueError(base)

    def render(self, spec: Spec) -> Rgb:
        rgb = self.base(spec.base)
        if spec.edit is None:
            return rgb
        donor = self.photos[spec.donor] if spec.donor else None
        context = photo_edits.EditContext(np.random.default_rng(spec.seed()), donor)
        return np.ascontiguousarray(EDIT_BY_NAME[spec.edit](rgb, context))


def _fit(rgb: Rgb, max_side: int | None) -> Rgb:
    height, width = rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return rgb
    scale = max_side / max(height, width)
    size = (round(width * scale), round(height * scale))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def generated_seeds(
    count: int, start: int, size: tuple[int, int], *, registrable: bool
) -> list[int]:
    """Seeds of ``count`` generated images from ``start`` on (of quality MIN_QUALITY or more
    when ``registrable``)."""
    seeds: list[int] = []
    seed = start
    while len(seeds) < count:
        if not registrable:
            seeds.append(seed)
        else:
            pixels = to_uint8(photo_like_rgb(np.random.default_rng(seed), *size))
            if pdqhash.compute(pixels)[1] >= MIN_QUALITY:
                seeds.append(seed)
        seed += 1
    return seeds


@dataclass(frozen=True, slots=True)
class Plan:
    registered: list[Spec]  # what is registered (its plain members are measured for recall)
    measured: list[Spec]  # the registered images the edits are applied to
    donors: list[str]
    distractors: list[Spec]


ROOM_KIND = "same room, other people"
KINDS = (
    "real photo, unregistered",
    "near-identical scene (series partner)",
    "real photo, unregistered, edited",
    "near-identical scene, edited, captioned or with the logo",
    "generated photo-like image",
    "generated image, edited",
    ROOM_KIND,
    "shares the caption of registered queries",
    "shares the caption of a registered photo",
    "shares the logo of registered photos",
)


def plan(
    names: Sequence[str], *, photos: int, generated: int, distractor_generated: int, quick: bool
) -> Plan:
    """What to register and what to use as distractors, from the corpus's photo ``names``."""
    available = set(names)
    real = [name for name in REGISTERED_PHOTOS if name in available][:photos]
    logo = [name for name in LOGO_CARRIERS if name in available][: 1 if quick else None]
    caption = [name for name in CAPTION_CARRIERS if name in available][: 1 if quick else None]
    rooms: list[str] = [
        f"seed:{seed}"
        for seed in generated_seeds(1 if quick else 2, 9000, GENERATED_SIZE, registrable=True)
    ]
    rooms += [name for name in ROOM_BACKGROUNDS if name in available][: 0 if quick else None]
    used = set(REGISTERED_PHOTOS) | set(LOGO_CARRIERS) | set(CAPTION_CARRIERS)
    used |= set(ROOM_BACKGROUNDS)
    pool = [name for name in names if name not in used]
    donors = [name for name in pool if name not in SERIES_OF][:7]
    seeds = generated_seeds(generated, 1, GENERATED_SIZE, registrable=True)
    measured = [Spec(("photo", name), source=name) for name in real]
    measured += [
        Spec(("generated", seed, *GENERATED_SIZE), source=f"generated #{seed}") for seed in seeds
    ]
    registered = list(measured)
    if not quick:
        registered += [
            Spec(("photo", name), source=name)
            for name in REGISTERED_PHOTOS
            if name in available and name not in real
        ]
    registered += [Spec(("logo", name), source=name) for name in logo]
    registered += [Spec(("caption", name), source=name) for name in caption]
    registered += [Spec(("room", room, 0), source=f"room {room}, member 0") for room in rooms]
    distractors: list[Spec] = []
    if quick:
        pool = pool[:: max(1, len(pool) // 6)][:6]
    for index, name in enumerate(pool):
        # A series partner's versions (edited, captioned, with the logo) count as near-identical.
        near = name in SERIES_OF
        photo = ("photo", name)
        distractors.append(Spec(photo, kind=KINDS[1] if near else KINDS[0], source=name))
        edits = DISTRACTOR_EDITS[index % 3 :: 3] if quick else DISTRACTOR_EDITS
        edited = KINDS[3] if near else KINDS[2]
        distractors += [Spec(photo, edit, kind=edited, source=name) for edit in edits]
        shared = SHARED_CAPTION_EDITS[index % len(SHARED_CAPTION_EDITS)]
        distractors.append(Spec(photo, shared, kind=KINDS[3] if near else KINDS[7], source=name))
        if caption:
            kind = KINDS[3] if near else KINDS[8]
            distractors.append(Spec(("caption", name), kind=kind, source=name))
        if logo:
            kind = KINDS[3] if near else KINDS[9]
            distractors.append(Spec(("logo", name), kind=kind, source=name))
    generated_distractors = generated_seeds(
        distractor_generated, 100_000, (0, 0), registrable=False
    )
    for index, seed in enumerate(generated_distractors):
        base = ("generated", seed, *DISTRACTOR_SIZES[index % len(DISTRACTOR_SIZES)])
        distractors.append(Spec(base, kind=KINDS[4], source=f"generated #{seed}"))
        if index % 2 == 0:
            edit = DISTRACTOR_EDITS[(index // 2) % len(DISTRACTOR_EDITS)]
            distractors.append(Spec(base, edit, kind=KINDS[5], source=f"generated #{seed}"))
    for room in rooms:
        for member in range(1, 3 if quick else ROOM_MEMBERS):
            source = f"room {room}, member {member}"
            distractors.append(Spec(("room", room, member), kind=ROOM_KIND, source=source))
    return Plan(registered, measured, donors, _distinct(distractors))


def _distinct(specs: list[Spec]) -> list[Spec]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for spec in specs:
        key = (spec.base, spec.edit, spec.donor)
        if key not in seen:
            seen.add(key)
            out.append(spec)
    return out

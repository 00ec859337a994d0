"""Real photographs for the tests and the benchmarks, from packages whose versions are pinned.

Generated images (tests/images.py) have more fine texture and fewer smooth areas than camera
photos, so what PDQ does with a crop or an edit is measured on real photographs too. The ones
used here are the sample images that ship inside a few packages, so that anyone can rebuild the
same corpus with nothing but the ordinary package clients:

- the wheels of scikit-image 0.26.0, scikit-learn 1.9.1, matplotlib 3.11.2 and imgaug 0.4.0
  (``python -m pip download --no-deps``);
- the Debian package ``opencv-doc`` (``apt-get download``, unpacked with ``dpkg -x``), the larger
  share; without apt-get the wheels are used alone. Its sample videos are kept too (``videos``),
  for the frames of the real-hash data set (tests/benchmarks/real_hashes.py).

They are downloaded once, into a temporary directory, and the photographs copied into
``.data/photos/`` (git-ignored; ``make clean`` removes it, and so a new download). ``load`` keeps
the photographs only: logos, drawings, text pages, digits, masks, gradients and depth maps are
left out by name, images under MIN_SIDE pixels a side or of PDQ quality under MIN_QUALITY (the
registry refuses them) on load. Alpha is composited over white.

Some photographs are near-identical to others (two frames of one video, a stereo pair, one room
with a chessboard held in 26 poses): ``Photo.series`` names the series, so that a benchmark
registers one member and counts the others as distractors, and can say so. Nothing here fails
hard: when nothing can be fetched, ``load`` raises PhotosUnavailable, whose message says why,
and callers skip.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image

from registry.pdq import MIN_QUALITY

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".data" / "photos"
MANIFEST_VERSION = 2
MIN_SIDE = 200
DOWNLOAD_TIMEOUT = 900  # seconds, per package

# Each wheel and the folders of it that hold sample images.
WHEELS: dict[str, tuple[str, ...]] = {
    "scikit-image==0.26.0": ("skimage/data/",),
    "scikit-learn==1.9.1": ("sklearn/datasets/images/",),
    "matplotlib==3.11.2": ("matplotlib/mpl-data/sample_data/",),
    "imgaug==0.4.0": ("imgaug/",),
}
DEB_PACKAGE = "opencv-doc"
DEB_EXAMPLES = "usr/share/doc/opencv-doc/examples/"
# Every image of examples/data, and these photographs from the other examples (renamed where
# the name alone would clash or say nothing).
DEB_FOLDER = "data/"
DEB_EXTRAS: dict[str, str] = {
    "alphamat/input_images/plant.jpg": "plant",
    "dnn_superres/butterfly.png": "superres_butterfly",
    "hfs/data/000.jpg": "hfs_000",
    "hfs/data/001.jpg": "hfs_001",
    "hfs/data/002.jpg": "hfs_002",
    "reg/home.png": "reg_home",
    **{f"text/scenetext0{index}.jpg": f"scenetext0{index}" for index in range(1, 7)},
    **{
        f"text/scenetext_segmented_word0{index}.jpg": f"scenetext_word0{index}"
        for index in range(1, 6)
    },
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# The sample videos of the Debian package (paths under its documentation folder), by the name
# they are kept under; the gzipped ones are unpacked.
DEB_DOC = "usr/share/doc/opencv-doc/"
DEB_VIDEOS: dict[str, str] = {
    "examples/data/Megamind.avi": "Megamind",
    "examples/data/Megamind_bugy.avi": "Megamind_bugy",
    "examples/data/tree.avi": "tree",
    "examples/data/vtest.avi": "vtest",
    "opencv4/html/box.mp4.gz": "box",
    "opencv4/html/cup.mp4.gz": "cup",
}
# One clip twice: the second copy has corrupted frames.
VIDEO_SERIES: dict[str, str] = {
    "Megamind": "Megamind, clean and corrupted copies",
    "Megamind_bugy": "Megamind, clean and corrupted copies",
}

# Not photographs (or not of anything a person would register): left out by name.
NOT_PHOTOS = frozenset(
    {
        # logos, icons and clip art
        "logo",
        "logo2",
        "LinuxLogo",
        "WindowsLogo",
        "opencv-logo",
        "opencv-logo-white",
        "HappyFish",
        "ml",
        "Minduka_Present_Blue_Pack",
        # drawn or computed images: shapes, a colour wheel, a phantom, a composite of cards
        "chessboard",
        "chessboard_GRAY",
        "chessboard_RGB",
        "color",
        "detect_blob",
        "ellipses",
        "horse",
        "phantom",
        "cards",
        # text pages, digits, notes, a sudoku grid
        "page",
        "text",
        "text_defocus",
        "text_motion",
        "imageTextN",
        "imageTextR",
        "digits",
        "notes",
        "sudoku",
        # masks, templates, a gradient, a disparity and a depth map
        "mask",
        "templ",
        "tmpl",
        "gradient",
        "aloeGT",
        "quokka_depth_map_halfres",
    }
)

# Near-identical photographs: two frames of a video, stereo pairs, one scene under other light
# or from another viewpoint, an original and its forged copy. The drawn shapes pic1..pic6 are
# kept as a hard series of their own (the same flat backgrounds and shapes).
SERIES: dict[str, tuple[str, ...]] = {
    "chessboard room (26 poses, two cameras)": tuple(
        f"{side}{index:02d}" for side in ("left", "right") for index in range(1, 15) if index != 10
    ),
    "books, stereo pair": ("left", "right"),
    "aloe, stereo pair": ("aloeL", "aloeR"),
    "motorcycle, stereo pair": ("motorcycle_left", "motorcycle_right"),
    "rubber whale, video frames": ("rubberwhale1", "rubberwhale2"),
    "basketball, video frames": ("basketball1", "basketball2"),
    "Leuven street, two exposures": ("leuvenA", "leuvenB"),
    "graffiti, two viewpoints": ("graf1", "graf3"),
    "aerial views": ("aero1", "aero3"),
    "Suzanne, two renders": ("Blender_Suzanne1", "Blender_Suzanne2"),
    "drawn shapes": ("pic1", "pic2", "pic3", "pic4", "pic5", "pic6"),
    "notebook, original and forged": ("ela_original", "ela_modified"),
    "box, alone and in a scene": ("box", "box_in_scene"),
}
SERIES_OF = {name: series for series, names in SERIES.items() for name in names}

Rgb = NDArray[np.uint8]


class PhotosUnavailable(RuntimeError):  # noqa: N818 - reads as what the caller is told
    """The corpus could not be fetched or is empty; the message says why."""


@dataclass(frozen=True, slots=True)
class Photo:
    name: str
    rgb: Rgb
    source: str  # the package, with its version
    member: str  # the file's path inside the package
    series: str | None
    quality: int


@dataclass(frozen=True, slots=True)
class Video:
    name: str
    path: Path
    source: str  # the package, with its version
    member: str  # the file's path inside the package
    series: str | None


@dataclass(frozen=True, slots=True)
class Corpus:
    photos: list[Photo]
    sources: dict[str, str]  # package -> "ok" or why it is missing
    skipped: dict[str, str]  # name -> why it was left out on load

    def by_name(self) -> dict[str, Photo]:
        return {photo.name: photo for photo in self.photos}


def to_rgb(image: Image.Image) -> Rgb:
    """The image as RGB uint8, transparency composited over white, 16-bit samples scaled."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        samples = np.asarray(image, dtype=np.float64)
        top = 65535.0 if samples.max() > 255 else 255.0
        image = Image.fromarray(np.clip(samples * 255.0 / top, 0, 255).round().astype(np.uint8))
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        image = background
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _run(command: list[str], cwd: Path) -> str | None:
    """Run a download command; None when it worked, else a one-line reason."""
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{command[0]}: {error}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"{' '.join(command[:3])} exited {done.returncode}: {lines[-1] if lines else ''}"
    return None


def _wanted_deb_member(relative: str) -> str | None:
    """The name a file of the Debian package's examples is kept under, or None."""
    if relative in DEB_EXTRAS:
        return DEB_EXTRAS[relative]
    path = PurePosixPath(relative)
    if str(path.parent) + "/" == DEB_FOLDER and path.suffix.lower() in IMAGE_SUFFIXES:
        return path.stem
    return None


def _keep(name: str, data: bytes, suffix: str, files: Path) -> str:
    target = files / f"{name}{suffix.lower()}"
    target.write_bytes(data)
    return target.name


def _fetch_wheels(work: Path, files: Path, entries: list[dict[str, str]]) -> dict[str, str]:
    status: dict[str, str] = {}
    for requirement, folders in WHEELS.items():
        dest = work / requirement.replace("==", "-")
        dest.mkdir()
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        failed = _run([*command, "--quiet", "--dest", str(dest), requirement], work)
        wheels = sorted(dest.glob("*.whl"))
        if failed or not wheels:
            status[requirement] = failed or "no wheel downloaded"
            continue
        with zipfile.ZipFile(wheels[0]) as archive:
            for member in archive.namelist():
                path = PurePosixPath(member)
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if not any(member.startswith(folder) for folder in folders):
                    continue
                if path.stem in NOT_PHOTOS:
                    continue
                file = _keep(path.stem, archive.read(member), path.suffix, files)
                entries.append(
                    {"name": path.stem, "file": file, "source": requirement, "member": member}
                )
        status[requirement] = "ok"
    return status


def _fetch_deb(
    work: Path, files: Path, entries: list[dict[str, str]], videos: list[dict[str, str]]
) -> str:
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        return "apt-get or dpkg is not available"
    download = work / "deb"
    download.mkdir()
    failed = _run(["apt-get", "download", DEB_PACKAGE], download)
    packages = sorted(download.glob(f"{DEB_PACKAGE}_*.deb"))
    if failed or not packages:
        return failed or "no package downloaded"
    unpacked = work / "unpacked"
    failed = _run(["dpkg", "-x", str(packages[0]), str(unpacked)], work)
    if failed:
        return failed
    version = packages[0].name.removeprefix(f"{DEB_PACKAGE}_").rsplit("_", 1)[0]
    examples = unpacked / DEB_EXAMPLES
    for path in sorted(examples.rglob("*")):
        relative = path.relative_to(examples).as_posix()
        name = _wanted_deb_member(relative)
        if name is None or name in NOT_PHOTOS or not path.is_file():
            continue
        file = _keep(name, path.read_bytes(), path.suffix, files)
        entries.append(
            {
                "name": name,
                "file": file,
                "source": f"{DEB_PACKAGE} {version}",
                "member": f"/{DEB_EXAMPLES}{relative}",
            }
        )
    for relative, name in DEB_VIDEOS.items():
        path = unpacked / DEB_DOC / relative
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        file = _keep(name, data, PurePosixPath(relative.removesuffix(".gz")).suffix, files)
        videos.append(
            {
                "name": name,
                "file": file,
                "source": f"{DEB_PACKAGE} {version}",
                "member": f"/{DEB_DOC}{relative}",
            }
        )
    return "ok"


@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache directory (created if need be): one builder at a time."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fetch(cache: Path = CACHE) -> dict[str, object]:
    """The corpus's manifest, downloading the packages first unless ``cache`` holds them.

    Raises PhotosUnavailable when nothing could be downloaded (nothing is cached then, so the
    next call tries again)."""
    manifest_path = cache / "manifest.json"
    with locked(cache):
        if manifest_path.exists():
            manifest: dict[str, object] = json.loads(manifest_path.read_text())
            if manifest.get("version") == MANIFEST_VERSION:
                return manifest
        files = cache / "files"
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir()
        entries: list[dict[str, str]] = []
        video_entries: list[dict[str, str]] = []
        with tempfile.TemporaryDirectory(prefix="rempart-photos-") as temporary:
            work = Path(temporary)
            sources = _fetch_wheels(work, files, entries)
            sources[DEB_PACKAGE] = _fetch_deb(work, files, entries, video_entries)
        if not entries:
            reasons = "; ".join(f"{source}: {why}" for source, why in sources.items())
            raise PhotosUnavailable(f"no photo could be downloaded ({reasons})")
        manifest = {
            "version": MANIFEST_VERSION,
            "sources": sources,
            "photos": entries,
            "videos": video_entries,
        }
        partial = manifest_path.with_suffix(".partial")
        partial.write_text(json.dumps(manifest, indent=1) + "\n")
        partial.replace(manifest_path)
        return manifest


def load(cache: Path = CACHE) -> Corpus:
    """The corpus's photographs (fetched first if need be), sorted by name.

    Raises PhotosUnavailable when there is none."""
    manifest = fetch(cache)
    photos: list[Photo] = []
    skipped: dict[str, str] = {}
    entries = manifest["photos"]
    assert isinstance(entries, list)
    for entry in entries:
        name = str(entry["name"])
        if any(photo.name == name for photo in photos):
            name = f"{name}_{str(entry['source']).split('=')[0].split()[0]}"
        try:
            with Image.open(cache / "files" / entry["file"]) as image:
                image.load()
                rgb = to_rgb(image)
        except (OSError, ValueError) as error:
            skipped[name] = f"unreadable: {error}"
            continue
        if min(rgb.shape[:2]) < MIN_SIDE:
            skipped[name] = f"under {MIN_SIDE} px a side"
            continue
        quality = int(pdqhash.compute(rgb)[1])
        if quality < MIN_QUALITY:
            skipped[name] = f"PDQ quality {quality}"
            continue
        photos.append(
            Photo(
                name, rgb, str(entry["source"]), str(entry["member"]), SERIES_OF.get(name), quality
            )
        )
    if not photos:
        raise PhotosUnavailable(f"no usable photo in {cache} (skipped: {skipped})")
    sources = manifest["sources"]
    assert isinstance(sources, dict)
    photos.sort(key=lambda photo: photo.name)
    return Corpus(photos, {str(key): str(value) for key, value in sources.items()}, skipped)


def videos(cache: Path = CACHE) -> list[Video]:
    """The corpus's sample videos (fetched first if need be), sorted by name; empty when the
    Debian package could not be had. Raises PhotosUnavailable as ``fetch`` does."""
    entries = fetch(cache).get("videos", [])
    assert isinstance(entries, list)
    found = [
        Video(
            str(entry["name"]),
            cache / "files" / str(entry["file"]),
            str(entry["source"]),
            str(entry["member"]),
            VIDEO_SERIES.get(str(entry["name"])),
        )
        for entry in entries
    ]
    return sorted(found, key=lambda video: video.name)


def main() -> int:
    """``python -m tests.photos``: fetch the corpus and list it."""
    try:
        corpus = load()
    except PhotosUnavailable as error:
        print(f"photos unavailable: {error}", file=sys.stderr)
        return 1
    for photo in corpus.photos:
        height, width = photo.rgb.shape[:2]
        series = f"  [{photo.series}]" if photo.series else ""
        print(
            f"{photo.name:24s} {width:5d}x{height:<5d} q{photo.quality:<3d} {photo.source}{series}"
        )
    for name, why in sorted(corpus.skipped.items()):
        print(f"skipped {name}: {why}")
    for video in videos():
        series = f"  [{video.series}]" if video.series else ""
        print(f"video {video.name:18s} {video.member}{series}")
    print(f"{len(corpus.photos)} photos; sources: {corpus.sources}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

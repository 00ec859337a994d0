"""Short test videos made with Debian's ffmpeg, for the tests that hash videos in Chromium.

Every video is small (320x240 or less, 8 to 16 seconds) so the suite stays fast. Each one is
made of lavfi's synthetic sources with hard cuts between them, and the sources differ from one
video to the next, so two of these videos never share a scene.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SIZE = "320x240"


@dataclass(frozen=True)
class TestVideo:
    __test__ = False  # A description of a video, not a test class.

    """A video to make: its file name, its scenes (lavfi sources, with seconds each), its frame
    rate and its encoder arguments."""

    name: str
    scenes: tuple[tuple[str, float], ...]
    rate: str
    codec: tuple[str, ...]
    # Seconds the last picture is held at the end (a still section).
    still: float = 0.0


H264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "20")
VP9 = (
    "-c:v",
    "libvpx-vp9",
    "-pix_fmt",
    "yuv420p",
    "-b:v",
    "400k",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
    "-row-mt",
    "1",
)

# An H.264 MP4 at 25 fps with a 3-second still end; a VP9 WebM at 30 fps; an H.264 MP4 at
# 30000/1001 fps (the frame step rounds down to 29, as vPDQ takes it), tagged BT.709 as phones
# tag their videos (Chromium honours the tag, vpdq converts as BT.601 whatever the tag), and
# opening on 4 seconds of smooth gradients too plain to be compared (quality under 50).
SCENES = TestVideo(
    name="scenes.mp4",
    scenes=(("testsrc2", 5.0), ("mandelbrot", 5.0)),
    rate="25",
    codec=H264,
    still=3.0,
)
LIFE = TestVideo(
    name="life.webm",
    scenes=(
        ("life=mold=10:ratio=0.5:death_color=#202020:life_color=#e0e0a0", 5.0),
        ("cellauto=rule=110", 4.0),
        ("sierpinski", 3.0),
    ),
    rate="30",
    codec=VP9,
)
NTSC = TestVideo(
    name="ntsc.mp4",
    scenes=(
        ("gradients=speed=0.05:nb_colors=5:seed=7", 4.0),
        ("cellauto=rule=30", 4.0),
        ("testsrc", 4.0),
    ),
    rate="30000/1001",
    codec=(*H264, "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"),
)
ALL = (SCENES, LIFE, NTSC)


def ffmpeg() -> str:
    executable = shutil.which("ffmpeg")
    if executable is None:
        pytest.fail("ffmpeg is not installed (run make system-deps)")
    return executable


def make_video(folder: Path, video: TestVideo) -> Path:
    """Write ``video`` into ``folder``; return its path."""
    inputs: list[str] = []
    chains: list[str] = []
    for position, (source, seconds) in enumerate(video.scenes):
        separator = ":" if "=" in source else "="
        inputs += [
            "-f",
            "lavfi",
            "-t",
            str(seconds),
            "-i",
            f"{source}{separator}size={SIZE}:rate={video.rate}",
        ]
        chains.append(f"[{position}]format=yuv420p[s{position}]")
    joined = "".join(f"[s{position}]" for position in range(len(video.scenes)))
    graph = ";".join(chains) + f";{joined}concat=n={len(video.scenes)}:v=1"
    if video.still:
        graph += f",tpad=stop_mode=clone:stop_duration={video.still}"
    graph += "[v]"
    path = folder / video.name
    subprocess.run(
        [
            ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *inputs,
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-r",
            video.rate,
            *video.codec,
            str(path),
        ],
        check=True,
    )
    return path


def reencode(source: Path, target: Path, *, arguments: list[str]) -> Path:
    """``source`` through ffmpeg again with ``arguments`` (a partner's copy of the video)."""
    subprocess.run(
        [
            ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(source),
            *arguments,
            str(target),
        ],
        check=True,
    )
    return target


def flat_video(folder: Path, name: str = "flat.mp4", seconds: float = 4.0) -> Path:
    """A video of one flat grey picture: no frame reaches quality 50."""
    path = folder / name
    subprocess.run(
        [
            ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"color=c=gray:size={SIZE}:rate=25:duration={seconds}",
            *H264,
            str(path),
        ],
        check=True,
    )
    return path

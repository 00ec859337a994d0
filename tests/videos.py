"""Small videos made by ffmpeg for the tests and the video benchmarks: lavfi sources, stills,
flat frames, cuts and edits.

``make_video`` writes an H.264 (or any) file from an ffmpeg filter graph, so a test can say
exactly what is in the video it hashes. ffmpeg is one of the programs ``make system-deps``
installs; without it ``run_ffmpeg`` raises FfmpegMissing (tests skip on it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG_TIMEOUT = 300  # seconds


class FfmpegMissing(RuntimeError):  # noqa: N818 - reads as what the caller is told
    """ffmpeg is not on the PATH."""


def ffmpeg() -> str:
    """The ffmpeg program; raises FfmpegMissing without it."""
    program = shutil.which("ffmpeg")
    if program is None:
        raise FfmpegMissing("ffmpeg is not installed (make system-deps)")
    return program


def run_ffmpeg(*arguments: str) -> None:
    """Run ffmpeg quietly, overwriting its output; raises with its stderr on failure."""
    command = [ffmpeg(), "-v", "error", "-nostdin", "-y", *arguments]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


def make_video(
    path: Path,
    source: str = "testsrc2",
    *,
    seconds: float = 6,
    size: str = "320x240",
    rate: int = 25,
    codec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
) -> Path:
    """A video of the lavfi ``source`` (``testsrc2``, ``mandelbrot``, ``life``, a filter graph
    with ``{size}``, ``{rate}`` and ``{seconds}`` in it), ``seconds`` long."""
    graph = source.format(size=size, rate=rate, seconds=seconds)
    if "=" not in graph:
        graph = f"{graph}=size={size}:rate={rate}"
    run_ffmpeg("-f", "lavfi", "-i", graph, "-t", str(seconds), *codec, str(path))
    return path


def concat(path: Path, *parts: Path) -> Path:
    """The parts one after the other (same size and rate), re-encoded."""
    inputs = [argument for part in parts for argument in ("-i", str(part))]
    streams = "".join(f"[{index}:v]" for index in range(len(parts)))
    run_ffmpeg(
        *inputs,
        "-filter_complex",
        f"{streams}concat=n={len(parts)}:v=1[out]",
        "-map",
        "[out]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    return path

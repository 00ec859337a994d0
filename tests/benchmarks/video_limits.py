"""What vPDQ matching catches on edited videos, and what it matches that it should not.

Run: ``.venv/bin/python -m tests.benchmarks.video_limits [--quick]`` (``make limits``).

The registered videos are the real sample videos of Debian's ``opencv-doc`` (tests/photos.py:
``Megamind``, ``box``, ``cup``, ``tree``, ``vtest``), the longer ones cut into clips at
different offsets so that there are more videos than five pieces of footage, and a few videos
of ffmpeg's generated sources (lavfi: ``mandelbrot``, ``life``, ``cellauto``, ``sierpinski``,
``testsrc2``). Every video is hashed as a device hashes it (``registry.client.hash_video``:
Meta's reference ``vpdq``, one frame a second, then ``registry.videos.prune_frames``), and
every decision is ``registry.videos.video_decide``, the registry's rule (threatexchange's: 80%
of the query's frames within 31 bits of the registered video's), never tuned here.

Each edit is made by ffmpeg from the registered file and decided against that video (a match is
caught) and against every other registered video (a match there is a false match). The
"different video" rows decide each registered video against each other one: clips of the same
footage apart from clips of different footage. ``Megamind_bugy``, the package's copy of
``Megamind`` with corrupted frames, is decided against ``Megamind``.

Progress goes to stderr, the Markdown to stdout and, with the default sample, into
docs/limits.md between its markers (``--no-docs`` leaves the file alone).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from registry.client.videos import VideoHashes, hash_video
from registry.videos import VideoDecision, video_decide
from tests import photos
from tests.benchmarks.docs_block import docs_block_write
from tests.videos import FfmpegMissing, ffmpeg, make_video, run_ffmpeg

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "limits.md"
BEGIN = "<!-- video-limits: begin (written by make limits) -->"
END = "<!-- video-limits: end -->"
HEADER = (
    "| edit | pairs | matched | share | real clips / generated matched | median query match % "
    "| false matches (decisions) |"
)
PAIRS_HEADER = "| decision | pairs | matched | share | median query match % |"
SOURCES_HEADER = "| registered video | provenance | length s | frames sent |"
SAME_FOOTAGE = "different video, same footage (another clip of it)"
OTHER_FOOTAGE = "different video, other footage"
CORRUPTED = "corrupted copy (Debian's Megamind_bugy against Megamind)"
MISSED_LISTED = 6
X264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-an")


@dataclass(frozen=True, slots=True)
class Edit:
    name: str
    # ffmpeg's arguments between the input and the output; {length} is the video's length.
    arguments: tuple[str, ...]


EDITS: tuple[Edit, ...] = (
    Edit("the video itself, re-encoded (H.264, CRF 20)", ()),
    Edit("lower bitrate (H.264 at 150 kbit/s)", ("-b:v", "150k")),
    Edit("resized to half", ("-vf", "scale=trunc(iw/4)*2:-2")),
    Edit("trimmed 2 s at each end", ("-ss", "2", "-t", "{trimmed}")),
    Edit("centred crop 10%", ("-vf", "crop=trunc(iw*0.9/2)*2:trunc(ih*0.9/2)*2")),
    Edit("centred crop 20%", ("-vf", "crop=trunc(iw*0.8/2)*2:trunc(ih*0.8/2)*2")),
    Edit("frame rate changed to 15 fps", ("-vf", "fps=15")),
    Edit("greyscale", ("-vf", "hue=s=0")),
    Edit("mirrored (flipped left-right)", ("-vf", "hflip")),
    Edit("letterbox, black bars 12%", ("-vf", "pad=iw:trunc(ih*1.32/2)*2:0:(oh-ih)/2:black")),
    Edit("centred crop 30%", ("-vf", "crop=trunc(iw*0.7/2)*2:trunc(ih*0.7/2)*2")),
)

# The real videos, cut into clips: (name in the corpus, start s, length s or None for the rest).
REAL_CLIPS: tuple[tuple[str, float, float | None], ...] = (
    ("Megamind", 0, None),
    ("box", 0, None),
    ("cup", 0, None),
    ("tree", 0, 14),
    ("tree", 15, None),
    ("vtest", 0, 15),
    ("vtest", 16, 15),
    ("vtest", 32, 15),
    ("vtest", 48, 15),
    ("vtest", 64, None),
)
# ffmpeg's generated sources, 12 s each at 320x240, 25 fps.
GENERATED: tuple[tuple[str, str], ...] = (
    ("mandelbrot", "mandelbrot=size={size}:rate={rate}"),
    ("life", "life=size={size}:rate={rate}:seed=7:mold=10:ratio=0.3:life_color=white"),
    ("cellauto", "cellauto=size={size}:rate={rate}:rule=110:seed=3"),
    ("sierpinski", "sierpinski=size={size}:rate={rate}:seed=5:jump=20"),
    ("testsrc2", "testsrc2=size={size}:rate={rate}"),
)
QUICK_CLIPS = (("cup", 0, None),)
QUICK_GENERATED = GENERATED[:2]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Registered:
    name: str
    footage: str  # clips of one footage are not unrelated to each other
    provenance: str
    path: Path
    hashes: VideoHashes
    real: bool


def _cut(source: photos.Video, start: float, length: float | None, out: Path) -> str:
    timing = ("-ss", str(start), *(("-t", str(length)) if length else ()))
    run_ffmpeg("-i", str(source.path), *timing, *X264, str(out))
    span = f"{start:g} s to {start + length:g} s" if length else f"{start:g} s to the end"
    whole = start == 0 and length is None
    return f"{source.source}, {source.member}" + ("" if whole else f", {span}")


def register(work: Path, *, quick: bool, seconds: float) -> tuple[list[Registered], Path | None]:
    """The registered videos, and the corrupted copy of Megamind if the corpus has it."""
    corpus = {video.name: video for video in photos.videos()}
    registered: list[Registered] = []
    for name, start, length in QUICK_CLIPS if quick else REAL_CLIPS:
        if name not in corpus:
            continue
        label = name if start == 0 and length is None else f"{name} @{start:g}s"
        out = work / f"{label.replace(' @', '_at_')}.mp4"
        provenance = _cut(corpus[name], start, length, out)
        registered.append(Registered(label, name, provenance, out, hash_video(out), True))
    for name, graph in QUICK_GENERATED if quick else GENERATED:
        out = make_video(work / f"{name}.mp4", graph, seconds=seconds, codec=X264)
        provenance = f"ffmpeg lavfi `{graph.format(size='320x240', rate=25)}`, {seconds:g} s"
        hashes = hash_video(out)
        if hashes.unmatchable_reason:  # the registry would refuse it (a flat source)
            log(f"{name}: not registered, {hashes.unmatchable_reason}")
            continue
        registered.append(Registered(name, name, provenance, out, hashes, False))
    corrupted = corpus.get("Megamind_bugy")
    return registered, corrupted.path if corrupted and not quick else None


def _edit(video: Registered, edit: Edit, out: Path) -> VideoHashes:
    trimmed = f"{max(1.0, video.hashes.duration - 4):.2f}"
    arguments = [argument.replace("{trimmed}", trimmed) for argument in edit.arguments]
    seek = arguments[:2] if arguments[:1] == ["-ss"] else []
    rest = arguments[2:] if seek else arguments
    codec = [*X264]
    if "-b:v" in rest:  # a bitrate instead of a quality
        codec = [c for c in codec if c not in {"-crf", "20"}]
    run_ffmpeg(*seek, "-i", str(video.path), *rest, *codec, str(out))
    return hash_video(out)


def _matches(decision: VideoDecision | None) -> bool:
    return decision is not None and decision.is_match


@dataclass
class Row:
    name: str
    pairs: int = 0
    matched: int = 0
    percents: list[float] | None = None
    false_matches: int = 0
    false_decisions: int = 0
    real: tuple[int, int] = (0, 0)  # matched, pairs
    generated: tuple[int, int] = (0, 0)
    missed: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # false matches: "query ~ registered"

    def count(self, decision: VideoDecision | None, *, real: bool, name: str = "") -> None:
        matched = int(_matches(decision))
        if not matched and name:
            percent = decision.query_match_percent if decision else 0.0
            self.missed.append(f"{name} ({percent:.0f}%)")
        self.pairs += 1
        self.matched += matched
        if self.percents is not None:
            self.percents.append(decision.query_match_percent if decision else 0.0)
        if real:
            self.real = (self.real[0] + matched, self.real[1] + 1)
        else:
            self.generated = (self.generated[0] + matched, self.generated[1] + 1)

    def cells(self) -> list[str]:
        share = f"{100 * self.matched / self.pairs:.0f}%" if self.pairs else "-"
        median = f"{statistics.median(self.percents):.0f}" if self.percents else "-"
        return [self.name, str(self.pairs), str(self.matched), share, median]

    def line(self) -> str:
        name, pairs, matched, share, median = self.cells()
        split = f"{self.real[0]}/{self.real[1]} / {self.generated[0]}/{self.generated[1]}"
        false = f"{self.false_matches} of {self.false_decisions:,}" if self.false_decisions else "-"
        return f"| {name} | {pairs} | {matched} | {share} | {split} | {median} | {false} |"

    def pairs_line(self) -> str:
        return "| " + " | ".join(self.cells()) + " |"


def measure(arguments: argparse.Namespace) -> list[str]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rempart-video-limits-") as temporary:
        work = Path(temporary)
        registered, corrupted = register(work, quick=arguments.quick, seconds=arguments.seconds)
        if not registered:
            raise photos.PhotosUnavailable("no video could be registered")
        log(f"{len(registered)} videos registered")
        rows: list[Row] = []
        for number, edit in enumerate(EDITS):
            row = Row(edit.name, percents=[])
            for video in registered:
                query = _edit(video, edit, work / f"edit{number}_{video.name}.mp4".replace(" ", ""))
                decision = video_decide(query.frames, video.hashes.frames)
                row.count(decision, real=video.real, name=video.name)
                for other in registered:
                    if other.footage == video.footage:
                        continue
                    row.false_decisions += 1
                    if _matches(video_decide(query.frames, other.hashes.frames)):
                        row.false_matches += 1
                        row.wrong.append(f"{video.name}, edited ~ {other.name}")
            log(f"{edit.name}: {row.matched}/{row.pairs}, {row.false_matches} false")
            rows.append(row)
        same, other_footage = Row(SAME_FOOTAGE, percents=[]), Row(OTHER_FOOTAGE, percents=[])
        for asked in registered:
            for video in registered:
                if video is asked:
                    continue
                row = same if video.footage == asked.footage else other_footage
                decision = video_decide(asked.hashes.frames, video.hashes.frames)
                row.count(decision, real=video.real)
                if _matches(decision):
                    row.wrong.append(f"{asked.name} ~ {video.name}")
        if corrupted is not None:
            megamind = next(video for video in registered if video.name == "Megamind")
            copy = hash_video(corrupted)
            row = Row(CORRUPTED, percents=[])
            row.count(video_decide(copy.frames, megamind.hashes.frames), real=True)
            rows.append(row)
        elapsed = time.perf_counter() - started
    real = [video for video in registered if video.real]
    footages = sorted({video.footage for video in real})
    return [
        f"{len(registered)} registered videos: {len(real)} clips of the {len(footages)} real "
        f"sample videos of Debian's opencv-doc ({', '.join(footages)}) and "
        f"{len(registered) - len(real)} of ffmpeg's generated sources; each edit is made from "
        "each of them and decided against it (caught) and against every registered video of "
        "other footage (false matches). A match is threatexchange's vPDQ rule: 80% of the "
        "query's frames within 31 bits of a frame of the registered video.",
        "",
        HEADER,
        "|---|---:|---:|---:|---:|---:|---:|",
        *(row.line() for row in rows),
        "",
        "Missed (the query's share of frames matched in brackets), where an edit missed at most "
        f"{MISSED_LISTED} videos:",
        "",
        *(
            f"- {row.name}: {', '.join(row.missed)}"
            for row in rows
            if row.missed and len(row.missed) <= MISSED_LISTED
        ),
        "",
        "Every registered video against every other one (the query is the registered video "
        "itself):",
        "",
        PAIRS_HEADER,
        "|---|---:|---:|---:|---:|",
        same.pairs_line(),
        other_footage.pairs_line(),
        "",
        *(
            f"- {row.name}: {len(row.wrong)} matched: {', '.join(row.wrong)}"
            for row in [*rows, same, other_footage]
            if row.wrong
        ),
        "",
        SOURCES_HEADER,
        "|---|---|---:|---:|",
        *(
            f"| {video.name} | {video.provenance} | {video.hashes.duration:.1f} "
            f"| {len(video.hashes.frames)} |"
            for video in registered
        ),
        "",
        f"(Measured in {elapsed / 60:.1f} min; vpdq {version('vpdq')}, ffmpeg "
        f"{_ffmpeg_version()}, libx264 veryfast CRF 20 for every clip and edit unless the "
        "bitrate is the edit.)",
    ]


def _ffmpeg_version() -> str:
    done = subprocess.run([ffmpeg(), "-version"], capture_output=True, text=True, check=False)
    first = done.stdout.split("\n", 1)[0].split()
    return first[2] if len(first) > 2 else "unknown"


def write_docs(lines: Sequence[str], path: Path = DOCS) -> None:
    docs_block_write(path, begin=BEGIN, end=END, lines=lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="one real video and two generated ones, 6 s each"
    )
    parser.add_argument("--seconds", type=float, default=12, help="length of a generated video")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/limits.md alone")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.seconds = 6
    try:
        lines = measure(arguments)
    except (photos.PhotosUnavailable, FfmpegMissing) as error:
        print(f"video limits: skipped, the sample videos are unavailable: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if not arguments.quick and arguments.seconds == 12 and not arguments.no_docs:
        write_docs(lines)
        print(f"(written into {DOCS.relative_to(ROOT)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

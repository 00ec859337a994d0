"""The partner client's videos: the frame list it computes (vPDQ, then pruned), the MD5 and the
length it sends, its progress line, and what it asks and prints, on small videos made by ffmpeg."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from registry.client import Client, RegistryError, cli, progress, videos
from registry.client import main as rempart
from registry.matching.follower import Matcher
from registry.pdq import distance
from registry.videos import PRUNE_DISTANCE, Frame, parse_frame, prune_frames
from tests.conftest import PartnerPersona
from tests.images import write_photo
from tests.videos import concat, make_video, run_ffmpeg

vpdq = pytest.importorskip("vpdq", reason="the video extra: make video")
if shutil.which("ffmpeg") is None:
    pytest.skip("ffmpeg is not installed (make system-deps)", allow_module_level=True)
ROOT = Path(__file__).resolve().parents[2]


def _reference(path: Path) -> list[Frame]:
    """What the registry's contract says a device sends: vPDQ's features, read as the registry
    reads them, pruned."""
    features = vpdq.computeHash(str(path), seconds_per_hash=1)
    return prune_frames(
        parse_frame({"hash": f.hex, "quality": f.quality, "timestamp": f.timestamp}, frame=i)
        for i, f in enumerate(features)
    )


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("videos") / "moving.mp4", seconds=6)


def test_a_video_is_hashed_by_vpdq_one_frame_a_second(moving: Path) -> None:
    video = videos.hash_video(moving)
    assert list(video.frames) == _reference(moving)
    assert [frame.timestamp for frame in video.frames] == [0, 1, 2, 3, 4, 5]
    assert all(frame.quality >= 50 for frame in video.frames)
    assert video.md5 == hashlib.md5(moving.read_bytes(), usedforsecurity=False).hexdigest()
    assert video.duration == pytest.approx(6.0, abs=0.05)
    assert video.duration_source == "ffprobe"
    listed = video.frame_list
    assert [bytes.fromhex(str(item["hash"])) for item in listed] == [f.value for f in video.frames]
    assert set(listed[0]) == {"hash", "quality", "timestamp"}


def test_a_still_section_is_pruned_to_one_frame(tmp_path: Path) -> None:
    still = make_video(tmp_path / "still.mp4", "smptebars=size={size}:rate={rate}", seconds=4)
    moving = make_video(tmp_path / "moving.mp4", seconds=4)
    video = videos.hash_video(concat(tmp_path / "both.mp4", still, moving))
    raw = vpdq.computeHash(str(tmp_path / "both.mp4"), seconds_per_hash=1)
    assert len(raw) == 8
    assert list(video.frames) == _reference(tmp_path / "both.mp4")
    assert len(video.frames) < len(raw)
    assert video.frames[0].timestamp == 0
    for before, after in zip(video.frames, video.frames[1:], strict=False):
        assert distance(before.value, after.value) > PRUNE_DISTANCE


def test_flat_frames_stay_in_the_list_and_a_flat_video_is_not_matchable(tmp_path: Path) -> None:
    black = make_video(tmp_path / "black.mp4", "color=black:size={size}:rate={rate}", seconds=3)
    video = videos.hash_video(black)
    assert [frame.quality for frame in video.frames] == [0, 0, 0]
    assert all(frame.value == b"" for frame in video.frames)  # degenerate: never compared
    assert [item["hash"] for item in video.frame_list] == ["0" * 64] * 3
    assert video.unmatchable_reason is not None
    assert "quality 50" in video.unmatchable_reason


def test_the_length_falls_back_to_opencv_then_to_the_last_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_video(tmp_path / "clip.mp4", seconds=4.5)
    frames = videos.hash_video(clip).frames
    length, source = videos.video_duration(clip, frames)
    assert (round(length, 1), source) == (4.5, "ffprobe")
    monkeypatch.setattr("registry.client.videos.shutil.which", lambda name: None)
    length, source = videos.video_duration(clip, frames)
    assert source == "opencv"
    assert length == pytest.approx(4.5, abs=0.05)
    monkeypatch.setattr(videos, "_opencv_duration", lambda path: None)
    # The last hash is at 4 s: the video lasts at least until 5 s by this rule.
    assert videos.video_duration(clip, frames) == (5.0, "last frame + 1 s")


def test_without_vpdq_the_command_says_what_to_install(
    moving: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr("registry.client.videos.importlib.import_module", missing)
    assert rempart(["hash", str(moving)]) == 2
    assert "pip install 'rempart[video]'" in capsys.readouterr().err


def test_a_file_that_is_no_video_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"not a video at all\n" * 100)
    assert rempart(["hash", str(junk)]) == 2
    assert str(junk) in capsys.readouterr().err


def test_photos_and_videos_are_told_apart(tmp_path: Path, moving: Path) -> None:
    photo = write_photo(tmp_path / "photo.jpg", seed=1)
    renamed = tmp_path / "clip.bin"
    renamed.write_bytes(moving.read_bytes())
    assert cli.is_video(moving)
    assert cli.is_video(renamed)  # Pillow cannot read it: a video
    assert not cli.is_video(photo)


def test_the_progress_line_shows_the_share_of_the_file_read_and_the_time() -> None:
    assert progress.progress_line("a.mp4", 1.25, None, 100) == "hashing a.mp4    1.2 s"
    line = progress.progress_line("a.mp4", 3.0, 50, 100)
    assert line == "hashing a.mp4 [############............]  50% of the file read    3.0 s"
    assert "100%" in progress.progress_line("a.mp4", 3.0, 120, 100)


def test_the_position_read_is_the_open_files_offset(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(10_000))
    with data.open("rb") as file:
        file.seek(4_096)
        assert progress.read_position(os.getpid(), data.resolve()) == 4_096
    assert progress.read_position(os.getpid(), data.resolve()) is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_hashing_runs_aside_and_the_line_is_cleared(moving: Path) -> None:
    terminal = _Terminal()
    on_terminal = cli.hash_video_file(moving, terminal)
    assert on_terminal == videos.hash_video(moving)
    shown = terminal.getvalue()
    if shown:  # a short video may be hashed before the first refresh
        assert shown.startswith("\rhashing moving.mp4")
        assert shown.endswith("\r")
        assert shown.rstrip("\r").split("\r")[-1].strip() == ""


def test_off_a_terminal_nothing_is_written_while_hashing(
    moving: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rempart(["hash", str(moving)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"{moving}\tvideo, 6 frames, 6.00 s (ffprobe), md5 ")


class _Registry(BaseHTTPRequestHandler):
    """A stand-in for the registry's match route, answering canned matches."""

    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        answer: dict[str, Any] = {}
        if "hashes" in body:
            answer["results"] = [{"matches": []} for _ in body["hashes"]]
        if "videos" in body:
            match = {
                "match_id": "m_video", "scope": "intimate", "minor_depicted": False,
                "status": "active", "kind": "video", "query_match_percent": 83.3,
                "registered_match_percent": 41.7, "timestamp": 12.0,
            }  # fmt: skip
            answer["video_results"] = [{"matches": [match]} for _ in body["videos"]]
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def stand_in() -> Iterator[str]:
    _Registry.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_match_sends_each_videos_frames_and_prints_a_line_per_file(
    stand_in: str, tmp_path: Path, moving: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = write_photo(tmp_path / "photo.jpg", seed=2)
    black = make_video(tmp_path / "black.mp4", "color=black:size={size}:rate={rate}", seconds=2)
    arguments = ["--url", stand_in, "match", str(moving), str(photo), str(black), "--key", "k"]
    assert rempart(arguments) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{moving}\tMATCH intimate active m_video video 83.3% of the upload, 41.7% of the "
        "registered video, at 12 s"
    )
    assert lines[1] == f"{photo}\tno match"
    assert lines[2].startswith(f"{black}\tnot matchable: no frame of quality 50")
    assert len(lines) == 3
    photos_call, video_call = _Registry.bodies
    assert "videos" not in photos_call
    assert video_call == {
        "videos": [{"frames": videos.hash_video(moving).frame_list}],
        "purpose": "publish",
    }


def test_submit_sends_the_frames_md5_and_length(
    stand_in: str, moving: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []

    def post(self: object, path: str, body: dict[str, Any]) -> dict[str, str]:
        sent.append({"path": path, **body})
        return {"case_reference": "R", "case_secret": "S"}

    monkeypatch.setattr("registry.client.http.Client.post", post)
    assert (
        rempart(["--url", stand_in, "submit", str(moving), "--scope", "intimate", "--attest"]) == 0
    )
    (body,) = sent
    video = videos.hash_video(moving)
    assert body["path"] == "/api/v1/cases"
    assert body["images"] == []
    assert body["videos"] == [
        {"frames": video.frame_list, "md5": video.md5, "duration": video.duration}
    ]


def test_the_client_hashes_photos_without_vpdq_and_never_loads_it(tmp_path: Path) -> None:
    image = write_photo(tmp_path / "photo.png", seed=3)
    script = f"""
import importlib.abc, runpy, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "vpdq":
            raise ModuleNotFoundError("No module named 'vpdq'")
        return None

sys.meta_path.insert(0, Blocked())
sys.argv = ["rempart", "hash", {str(image)!r}]
try:
    runpy.run_module("registry.client", run_name="__main__")
finally:
    print("vpdq loaded:", "vpdq" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{image}\tquality ")
    assert result.stdout.splitlines()[-1] == "vpdq loaded: False"


def test_a_long_video_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_video(tmp_path / "clip.mp4", seconds=2)
    hours = [("ab" * 32, 100, float(second)) for second in range(0, 3700, 1)]
    monkeypatch.setattr(cli, "vpdq_features", lambda path: hours)
    arguments = ["--url", "http://127.0.0.1:9", "submit", str(clip), "--scope", "intimate"]
    assert rempart([*arguments, "--attest"]) == 2
    assert "longer than 30 minutes" in capsys.readouterr().err


def test_run_ffmpeg_reports_its_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="ffmpeg"):
        run_ffmpeg("-i", str(tmp_path / "absent.mp4"), str(tmp_path / "out.mp4"))


@pytest.fixture
def registered_video(tmp_path: Path) -> Path:
    return make_video(tmp_path / "registered.mp4", "mandelbrot=size={size}:rate={rate}", seconds=8)


@pytest.mark.django_db(transaction=True)
def test_round_trip_a_video_and_a_photo_registered_matched_withdrawn(
    live_server: object,
    tmp_path: Path,
    registered_video: Path,
    capsys: pytest.CaptureFixture[str],
    partner_a: PartnerPersona,
    match_index: Matcher,
) -> None:
    url = str(live_server)
    photo = write_photo(tmp_path / "photo.jpg", seed=4)
    # What a platform receives: the video shrunk and re-encoded, or cut; and an unrelated one.
    copy, clip = tmp_path / "copy.mp4", tmp_path / "clip.mp4"
    run_ffmpeg("-i", str(registered_video), "-vf", "scale=160:-2", "-crf", "30", str(copy))
    run_ffmpeg("-ss", "2", "-i", str(registered_video), "-t", "4", str(clip))
    other = make_video(tmp_path / "other.mp4", "life=size={size}:rate={rate}:seed=3", seconds=6)
    match_index.start()

    submit = ["--url", url, "submit", str(registered_video), str(photo), "--scope", "intimate"]
    assert rempart([*submit, "--attest"]) == 0
    out = capsys.readouterr().out
    reference = out.split("case reference:")[1].split()[0]
    secret = out.split("case secret:")[1].split()[0]
    summary = Client(url).post(
        "/api/v1/cases/status", {"case_reference": reference, "case_secret": secret}
    )
    assert (summary["images"], summary["videos"]) == (2, 1)

    key = partner_a.raw_key
    files = [str(copy), str(photo), str(other), str(clip)]
    deadline = time.monotonic() + 5
    while rempart(["--url", url, "match", *files, "--key", key]) != 1:
        assert time.monotonic() < deadline, "the new case never became matchable"
        time.sleep(0.05)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert re.fullmatch(
        rf"{re.escape(str(copy))}\tMATCH intimate active m_\S+ video 100\.0% of the upload, "
        r"100\.0% of the registered video, at \d+ s",
        lines[0],
    ), lines[0]
    assert lines[1].startswith(f"{photo}\tMATCH intimate active m_")
    assert lines[2] == f"{other}\tno match"
    # The clip is half the registered video: all of the clip matches, half of the video.
    assert re.fullmatch(
        rf"{re.escape(str(clip))}\tMATCH intimate active m_\S+ video 100\.0% of the upload, "
        r"50\.0% of the registered video, at [2-5] s",
        lines[3],
    ), lines[3]

    Client(url).post("/api/v1/cases/withdraw", {"case_reference": reference, "case_secret": secret})
    assert rempart(["--url", url, "match", str(copy), str(clip), "--key", key]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{copy}\tno match", f"{clip}\tno match"]
    match_index.stop()


@pytest.mark.django_db(transaction=True)
def test_the_registry_refuses_a_video_the_client_would_send_wrong(
    live_server: object, registered_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry, not only the client, refuses a flat video: the client's check agrees."""
    black = make_video(
        registered_video.with_name("black.mp4"), "color=black:size={size}:rate={rate}", seconds=2
    )
    video = videos.hash_video(black)
    assert video.unmatchable_reason is not None
    with pytest.raises(RegistryError) as refused:
        Client(str(live_server)).submit([], videos=[video], scope="intimate")
    assert refused.value.code == "video_quality_too_low"
    submit = ["--url", str(live_server), "submit", str(black), "--scope", "intimate", "--attest"]
    assert rempart(submit) == 2
    assert "Cannot be protected" in capsys.readouterr().err


def test_the_partner_guides_video_snippet_gives_the_clients_frames(
    tmp_path: Path, moving: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "partners.md").read_text()
    (snippet,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "hash_video" in b
    ]
    (tmp_path / "upload.mp4").write_bytes(moving.read_bytes())
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(snippet, namespace)  # noqa: S102 - the documentation's own example
    assert namespace["frames"] == videos.hash_video(moving).frame_list

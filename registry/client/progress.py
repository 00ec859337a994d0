"""A progress line on a terminal while vPDQ hashes a video.

``vpdq.computeHash`` takes no callback and holds the interpreter's lock until it returns (a
thread beside it does not run), so the hashing runs in a child process and this process watches
it. What is shown is what can be known: on Linux, how far into the file the decoder has read
(the position of the child's open file, ``/proc/<pid>/fdinfo``), as a bar and a share of the
file's bytes, with the time elapsed; elsewhere, or before the file is open, the time elapsed
alone. No estimate of the time left is made up: decoding speed depends on the codec and the
machine, and the share of bytes read is the honest measure of the work done.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TextIO

from registry.client.videos import Feature, VideoUnavailable, vpdq_features

BAR_WIDTH = 24
REFRESH_SECONDS = 0.1


def _child(path: str, sender: Connection) -> None:
    try:
        sender.send(("ok", vpdq_features(path)))
    except VideoUnavailable as error:
        sender.send(("unavailable", str(error)))
    except Exception as error:  # any failure reaches the parent as a message
        sender.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        sender.close()


def read_position(pid: int, target: Path) -> int | None:
    """How far process ``pid`` has read into ``target`` (its open file's offset), or None when
    that cannot be seen (not Linux, the file not open, no permission)."""
    folder = Path(f"/proc/{pid}/fd")
    try:
        descriptors = list(folder.iterdir())
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            if Path(os.readlink(descriptor)) != target:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{descriptor.name}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("pos:"):
                return int(line.split()[1])
    return None


def progress_line(name: str, elapsed: float, read: int | None, size: int) -> str:
    """One line of progress: the bar and share of the file read when known, and the time."""
    if read is None or size <= 0:
        return f"hashing {name}  {elapsed:5.1f} s"
    share = min(1.0, read / size)
    filled = round(share * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"hashing {name} [{bar}] {share:4.0%} of the file read  {elapsed:5.1f} s"


def hash_with_progress(
    path: str | Path, stream: TextIO, *, clock: Callable[[], float] = time.monotonic
) -> list[Feature]:
    """vPDQ's features of ``path``, computed in a child process while a progress line is
    redrawn on ``stream`` (a terminal); the line is cleared at the end.

    Raises VideoUnavailable as vpdq_features does (and when the child dies)."""
    target = Path(path).resolve()
    size = target.stat().st_size
    # Fork where there is one (Linux: nothing to import again), else spawn.
    context = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else multiprocessing.get_context("spawn")
    )
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(str(target), sender), daemon=True)
    started = clock()
    child.start()
    sender.close()
    width = 0
    try:
        while not receiver.poll(REFRESH_SECONDS):
            if not child.is_alive():
                break
            assert child.pid is not None
            line = progress_line(
                target.name, clock() - started, read_position(child.pid, target), size
            )
            stream.write("\r" + line.ljust(width))
            stream.flush()
            width = len(line)
        try:
            status, value = receiver.recv()
        except EOFError:
            status, value = "error", f"the hashing process ended with status {child.exitcode}"
    finally:
        if width:
            stream.write("\r" + " " * width + "\r")
            stream.flush()
        receiver.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
    if status != "ok":
        raise VideoUnavailable(value if status == "unavailable" else f"{path}: {value}")
    features: list[Feature] = value
    return features

"""`make test` finds or installs the system programs it drives (.ci/system-deps).

The script runs with a PATH of its own: a directory holding only what a test puts there (an
``id`` that answers a chosen user id, an ``apt-get`` that records its arguments, stand-ins for
the programs), so that the machine's own programs are neither seen nor touched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "system-deps"
BASH = shutil.which("bash") or "/bin/bash"
PROGRAMS = ["chromium", "wrk", "nginx", "ffmpeg"]
# What vpdq's build needs: two programs, and FFmpeg's libraries as pkg-config finds them.
BUILD_TOOLS = ["pkg-config", "cmake"]
LIBRARIES = [
    "libavcodec",
    "libavformat",
    "libavdevice",
    "libavfilter",
    "libavutil",
    "libswscale",
    "libswresample",
]
LIBRARY_PACKAGES = " ".join(f"{name}-dev" for name in LIBRARIES)


def _executable(path: Path, body: str) -> None:
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _bin(tmp_path: Path, *, uid: int, present: list[str], libraries: bool = True) -> Path:
    """A PATH directory: ``id -u`` answers ``uid``; each of ``present`` is a stand-in program;
    pkg-config finds a library when a file ``lib-NAME`` is there, which, with ``libraries``,
    each of FFmpeg's is, and cmake too; ``apt-get`` logs its arguments and, on install, provides the
    programs of the packages (a library's -dev package: its file)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    _executable(directory / "id", f'[ "$1" = "-u" ] && echo {uid}')
    for name in present:
        _executable(directory / name, "exit 0")
    _executable(directory / "pkg-config", f'[ "$1" = "--exists" ] && [ -e "{directory}/lib-$2" ]')
    if libraries:
        _executable(directory / "cmake", "exit 0")
        for name in LIBRARIES:
            (directory / f"lib-{name}").write_text("")
    chmod = shutil.which("chmod") or "/bin/chmod"
    _executable(
        directory / "apt-get",
        f'echo "$*" >> "{tmp_path}/apt-get.log"\n'
        'if [[ " $* " == *" install "* ]]; then\n'
        '    for argument in "$@"; do\n'
        '        case "$argument" in -*|install) continue ;; nginx-light) name=nginx ;;'
        ' lib*-dev) name="lib-${argument%-dev}" ;;'
        ' *) name="$argument" ;; esac\n'
        f'        printf "#!{BASH}\\nexit 0\\n" > "{directory}/$name"\n'
        f'        {chmod} +x "{directory}/$name"\n'
        "    done\n"
        "fi",
    )
    return directory


def _run(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT)],
        env={"PATH": str(directory)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_not_root_it_prints_the_exact_install_command_and_fails(tmp_path: Path) -> None:
    result = _run(_bin(tmp_path, uid=1000, present=["wrk"]))
    assert result.returncode != 0
    assert "    apt-get update && apt-get install -y chromium nginx-light ffmpeg\n" in result.stderr
    assert "chromium nginx-light ffmpeg" in result.stderr.splitlines()[0]
    assert not (tmp_path / "apt-get.log").exists()


def test_as_root_it_installs_what_is_missing_non_interactively(tmp_path: Path) -> None:
    directory = _bin(tmp_path, uid=0, present=["chromium", "nginx"])
    result = _run(directory)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt-get.log").read_text().splitlines()
    assert calls[0].endswith("update -qq")
    assert calls[1].endswith("install -y -qq wrk ffmpeg")
    assert all(call.startswith("-o DPkg::Lock::Timeout=") for call in calls)
    assert all((directory / name).exists() for name in PROGRAMS)


def test_as_root_it_fails_when_the_install_leaves_a_program_missing(tmp_path: Path) -> None:
    directory = _bin(tmp_path, uid=0, present=["chromium", "nginx", "wrk"])
    (directory / "apt-get").write_text(f"#!{BASH}\nexit 0\n")  # installs nothing
    result = _run(directory)
    assert result.returncode != 0
    assert "still not on PATH: ffmpeg" in result.stderr


def test_without_ffmpegs_headers_it_installs_them_and_the_build_tools(tmp_path: Path) -> None:
    directory = _bin(
        tmp_path, uid=0, present=["chromium", "nginx", "wrk", "ffmpeg"], libraries=False
    )
    result = _run(directory)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt-get.log").read_text().splitlines()
    assert calls[1].endswith(f"install -y -qq {LIBRARY_PACKAGES} cmake")
    assert all((directory / f"lib-{name}").exists() for name in LIBRARIES)


def test_with_every_program_present_it_installs_nothing(tmp_path: Path) -> None:
    result = _run(_bin(tmp_path, uid=1000, present=["chromium-browser", "wrk", "nginx", "ffmpeg"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""
    assert not (tmp_path / "apt-get.log").exists()


def test_make_test_checks_the_system_programs_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest: install system-deps video ##" in makefile
    assert '@PATH="$$PATH:/usr/sbin:/sbin" .ci/system-deps' in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in ci, ".ci/run must install nothing that make test does not"

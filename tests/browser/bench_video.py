"""How long the browser takes to hash a video, and whether the page stays responsive meanwhile.

    python -m tests.browser.bench_video VIDEO [VIDEO ...]

Each video is hashed in the system Chromium (headless, software decoding) by the register page's
own modules (registry/static/registry/video.js and video-worker.js), served from loopback. It
prints the time taken, the frames hashed and sent, and the longest pause of the page's main
thread (a timer that should fire every 50 ms): a long pause is a frozen page. The numbers for a
10-minute 1080p video are in docs/videos.md; make test stays on short videos.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, STATIC_ROOT, _StaticHandler, open_page

MEASURE = """async () => {
    const { hashVideo } = await import('/registry/video.js');
    const file = document.querySelector('#video-file').files[0];
    let last = performance.now();
    let longest = 0;
    const timer = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
    }, 50);
    const started = performance.now();
    let total = 0;
    try {
        const video = await hashVideo(file, {
            workerUrl: '/registry/video-worker.js', maxSeconds: 1800,
            onProgress: (progress) => { total = progress.total; },
        });
        return { seconds: (performance.now() - started) / 1000, hashed: total,
                 sent: video.frames.length, longestPauseMs: longest, duration: video.duration };
    } finally {
        clearInterval(timer);
    }
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+", type=Path)
    arguments = parser.parse_args()
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("Chromium is not installed: no `chromium` on PATH.")
    handler = functools.partial(_StaticHandler, directory=str(STATIC_ROOT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            page = open_page(browser, f"http://127.0.0.1:{server.server_address[1]}")
            page.evaluate(
                "() => { const input = document.createElement('input'); input.type = 'file';"
                " input.id = 'video-file'; document.body.append(input); }"
            )
            print("| video | length s | frames hashed | frames sent | time s | longest pause ms |")
            for path in arguments.videos:
                page.locator("#video-file").set_input_files(str(path))
                result = page.evaluate(MEASURE)
                print(
                    f"| {path.name} | {result['duration']:.0f} | {result['hashed']} |"
                    f" {result['sent']} | {result['seconds']:.1f} |"
                    f" {result['longestPauseMs']:.0f} |"
                )
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()

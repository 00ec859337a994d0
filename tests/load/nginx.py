"""nginx in front of the load test's web processes: the deploy site, on loopback.

The site is deploy/nginx/rempart.conf with what a loopback run cannot or need not have:

* TLS: the HTTPS server block listens on a loopback port in plain HTTP (its TLS lines and the
  port-80 redirect are dropped); the registry then sees ``X-Forwarded-Proto: http``;
* the per-address request rate in front of the API (20 a second, for the many clients of a
  public site): every request of the load comes from one address, a partner's, so the rate is
  raised as an operator raises it for a large partner's addresses;
* the upstream: one ``server`` line per web process, and the logs in the run's directory.

Everything else (the log format without addresses, the body limits, the proxy headers,
keep-alive to the upstream, the error bodies) is the site as deployed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "rempart.conf"
# Enough for wrk's connections and the writes alongside, per address.
LOAD_RATE = "rate=100000r/s"


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("the load test needs nginx (make system-deps installs it)")
    return found


def site_for_load(port: int, upstreams: list[int], directory: Path) -> str:
    """The deploy site, rewritten for a loopback run (this module's docstring)."""
    site = SITE.read_text()
    # Drop the port-80 server (a redirect to HTTPS) and the TLS lines of the other.
    site = re.sub(r"server \{\n    listen 80;.*?\n\}\n", "", site, count=1, flags=re.DOTALL)
    site = re.sub(r"^\s*ssl_[a-z_]+ [^\n]*;\n", "", site, flags=re.MULTILINE)
    site = site.replace("    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n", "")
    site = site.replace(
        "    server_name registry.example.org;\n",
        f"    listen 127.0.0.1:{port};\n    server_name 127.0.0.1;\n",
    )
    servers = "".join(f"    server 127.0.0.1:{upstream};\n" for upstream in upstreams)
    site = site.replace("    server 127.0.0.1:8000;\n", servers)
    site = site.replace("rate=20r/s", LOAD_RATE)
    site = site.replace("burst=40 nodelay", "burst=1000 nodelay")
    site = site.replace("/var/log/nginx/", f"{directory}/")
    site = site.replace("/var/lib/rempart/static/", f"{directory}/static/")
    for needed in ("listen 127.0.0.1:", LOAD_RATE, "server 127.0.0.1:"):
        if needed not in site:
            raise RuntimeError(f"deploy/nginx/rempart.conf changed: could not set {needed!r}")
    return site


def start_nginx(port: int, upstreams: list[int], directory: Path) -> subprocess.Popen[bytes]:
    """nginx with the load site on ``port``, proxying to ``upstreams``; in the foreground."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rempart.conf").write_text(site_for_load(port, upstreams, directory))
    temporary = "\n".join(
        f"    {kind}_temp_path {directory}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    wrapper = directory / "nginx.conf"
    wrapper.write_text(
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"{temporary}\n"
        f"    include {directory}/rempart.conf;\n"
        "}\n"
    )
    return subprocess.Popen(
        [
            nginx_binary(),
            "-p",
            str(directory),
            "-e",
            str(directory / "error.log"),
            "-c",
            str(wrapper),
        ],
        stdout=(directory / "nginx.out").open("wb"),
        stderr=subprocess.STDOUT,
    )

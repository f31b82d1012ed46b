"""Downloaded networks: only a file that loads enters the cache, a cached copy that no longer loads is replaced once,
--refresh downloads again, and a killed download's temp file is removed by the next one. Offline: a local server."""
from __future__ import annotations

import fcntl
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import torch
from click.testing import CliRunner

from stylegan.cli.generate import generate
from stylegan.config import GeneratorConfig
from stylegan import download as dl
from stylegan.generator import Generator
from stylegan.loading import save

from network_test_support import TINY_GENERATOR


@pytest.fixture(autouse=True)
def _reference_ops(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OPS", "ref")


def _network_bytes(tmp_path: Path, seed: int) -> bytes:
    torch.manual_seed(seed)
    path = tmp_path / f"net{seed}.pt"
    save(path, G_ema=Generator(GeneratorConfig(**TINY_GENERATOR)))
    return path.read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> bytes); /slow/... promises a large body and trickles it until `stop` is set."""

    files: Dict[str, bytes] = {}
    requests: List[str] = []
    stop = threading.Event()

    def do_GET(self):  # noqa: N802 (http.server naming)
        type(self).requests.append(self.path)
        if self.path.startswith("/slow/"):
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            while not self.stop.wait(0.05):
                self.wfile.write(b"x" * 65536)
                self.wfile.flush()
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _Handler.files, _Handler.requests = {}, []
    _Handler.stop = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STYLEGAN_DOWNLOAD_DIR", str(folder))
    return folder


def _generate(url: str, outdir: Path, *extra: str):
    return CliRunner().invoke(generate, ["--network", url, "--seeds", "0", "--outdir", str(outdir), *extra])


def test_a_download_that_does_not_load_is_not_cached(server, cache, tmp_path):
    _Handler.files["/net.pt"] = b"<html>503 Service Unavailable</html>"
    url = f"{server}/net.pt"
    result = _generate(url, tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert url in result.output and "does not load, so it was not cached" in result.output, result.output
    assert ".part-" not in result.output  # the message names the URL, not our temp file
    assert list(cache.iterdir()) == []
    with pytest.raises(ValueError, match="not cached.*unknown file format"):  # the API checks by default too
        dl.download(url, progress=False)
    # The server is fixed: the next run downloads again and works.
    _Handler.files["/net.pt"] = _network_bytes(tmp_path, 0)
    assert _generate(url, tmp_path / "out").exit_code == 0
    assert [p.name for p in cache.iterdir()] == [dl.cached_name(url)]


def test_a_cached_copy_that_does_not_load_is_downloaded_again_once(server, cache, tmp_path):
    url = f"{server}/net.pt"
    good = _network_bytes(tmp_path, 0)
    _Handler.files["/net.pt"] = good
    cache.mkdir()
    (cache / dl.cached_name(url)).write_bytes(b"half a file")  # left by an older version, or damaged since
    result = _generate(url, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "cached copy" in result.output and "downloading it again" in result.output
    assert _Handler.requests == ["/net.pt"]
    assert (cache / dl.cached_name(url)).read_bytes() == good

    (cache / dl.cached_name(url)).write_bytes(b"half a file")
    _Handler.files["/net.pt"] = b"still broken"
    result = _generate(url, tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert _Handler.requests == ["/net.pt"] * 2  # once more, not in a loop
    assert list(cache.iterdir()) == []  # the broken copy is gone too


def test_refresh_downloads_again(server, cache, tmp_path):
    url = f"{server}/net.pt"
    first, second = _network_bytes(tmp_path, 0), _network_bytes(tmp_path, 1)
    _Handler.files["/net.pt"] = first
    assert _generate(url, tmp_path / "a").exit_code == 0
    _Handler.files["/net.pt"] = second
    assert _generate(url, tmp_path / "b").exit_code == 0
    assert _Handler.requests == ["/net.pt"] and (cache / dl.cached_name(url)).read_bytes() == first
    result = _generate(url, tmp_path / "c", "--refresh")
    assert result.exit_code == 0, result.output
    assert _Handler.requests == ["/net.pt"] * 2 and (cache / dl.cached_name(url)).read_bytes() == second
    assert (tmp_path / "b" / "seed0000.png").read_bytes() != (tmp_path / "c" / "seed0000.png").read_bytes()


def test_refresh_keeps_the_cached_copy_when_the_new_download_fails(server, cache, tmp_path):
    url = f"{server}/net.pt"
    good = _network_bytes(tmp_path, 0)
    _Handler.files["/net.pt"] = good
    dl.download(url, progress=False)
    _Handler.files["/net.pt"] = b"broken"
    with pytest.raises(ValueError, match="not cached"):
        dl.download(url, progress=False, refresh=True)
    assert (cache / dl.cached_name(url)).read_bytes() == good


def _parts(folder: Path) -> List[Path]:
    return sorted(folder.glob(".part-*.tmp"))


def test_a_killed_download_leaves_no_temp_file_after_the_next_start(server, cache, tmp_path):
    code = (f"from stylegan.download import download; "
            f"download({server + '/slow/big.pt'!r}, cache_dir={str(cache)!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not (_parts(cache) and _parts(cache)[0].stat().st_size > 0):
            assert proc.poll() is None and time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(_parts(cache)) == 1  # what a SIGKILL leaves behind
    _Handler.files["/net.pt"] = _network_bytes(tmp_path, 0)
    dl.download(f"{server}/net.pt", progress=False)
    assert _parts(cache) == []
    assert [p.name for p in cache.iterdir()] == [dl.cached_name(f"{server}/net.pt")]


def test_a_running_download_keeps_its_temp_file(tmp_path):
    live, dead = tmp_path / ".part-live.tmp", tmp_path / ".part-dead.tmp"
    live.write_bytes(b"partial")
    dead.write_bytes(b"partial")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a running download holds
        assert dl.remove_stale_parts(tmp_path) == [dead]
        assert live.exists() and not dead.exists()
    assert dl.remove_stale_parts(tmp_path) == [live]

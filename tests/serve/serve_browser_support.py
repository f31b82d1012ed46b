"""A live `stylegan serve` in a subprocess and Debian's chromium driven by Playwright: shared by the browser tests
and docs/scripts/serve_screenshot.py (a plain module, not conftest.py, so the script can import it too).

The browser is never downloaded: Playwright launches /usr/bin/chromium (`apt-get install chromium`, done by
.ci/run) with a fresh profile folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 180.0


def browser_unavailable() -> Optional[str]:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no browser at {CHROMIUM} (apt-get install chromium; .ci/run does this on CI)"
    return None


URL_LINE = re.compile(rb"http://127\.0\.0\.1:(\d+)/")


@contextlib.contextmanager
def serve(args: Sequence[str], env: Optional[dict] = None) -> Iterator[str]:
    """Runs `stylegan serve ARGS --port 0` (any free port) until the block ends; yields the base URL it prints,
    once /api/info answers there."""
    with tempfile.TemporaryDirectory(prefix="stylegan-serve-") as folder:
        log_path = Path(folder) / "serve.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "stylegan", "serve", *args, "--host", "127.0.0.1",
                                        "--port", "0"], stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **(env or {})})
        try:
            yield _wait_for_server(process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_server(process: subprocess.Popen, log_path: Path) -> str:
    """The URL the server printed, once /api/info answers there (RuntimeError with its output if it never does)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    url = None
    while True:
        output = log_path.read_bytes()
        if process.poll() is not None:
            raise RuntimeError(f"stylegan serve exited with {process.returncode}:\n{output[-4000:].decode()}")
        found = URL_LINE.search(output)
        url = found and f"http://127.0.0.1:{int(found.group(1))}"
        if url is not None:
            try:
                with urllib.request.urlopen(url + "/api/info", timeout=5) as resp:
                    json.load(resp)
                return url
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"stylegan serve did not answer within {START_TIMEOUT_S:g} s:\n"
                               f"{output[-4000:].decode()}")
        time.sleep(0.2)


@contextlib.contextmanager
def chromium(viewport: Optional[dict] = None) -> Iterator["object"]:
    """A Playwright browser context of /usr/bin/chromium with a fresh profile (removed afterwards)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="stylegan-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport=viewport or {"width": 1280, "height": 900})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def fetch_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read()


# In the page: the bytes an <img> shows (its blob: URL), base64-encoded.
IMAGE_BYTES_JS = """async (img) => {
  const buffer = await (await fetch(img.src)).arrayBuffer();
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text);
}"""


def shown_bytes(page, selector: str) -> bytes:
    """The bytes of the image `selector` shows."""
    import base64

    return base64.b64decode(page.eval_on_selector(selector, IMAGE_BYTES_JS))


def wait_for_query(page, selector: str, *parts: str, timeout_ms: float = 30000) -> str:
    """Waits until the image's data-query (what it shows) contains every part; returns it."""
    page.wait_for_function(
        """([selector, parts]) => { const el = document.querySelector(selector);
             return el && el.dataset.query && parts.every((p) => el.dataset.query.includes(p)); }""",
        arg=[selector, list(parts)], timeout=timeout_ms)
    return page.eval_on_selector(selector, "el => el.dataset.query")


__all__: List[str] = ["CHROMIUM", "CHROMIUM_ARGS", "browser_unavailable", "serve", "chromium", "fetch_bytes",
                      "shown_bytes", "wait_for_query"]

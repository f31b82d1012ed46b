"""Download a network file from an http(s) URL once, into an on-disk cache, atomically.

Why: `stylegan generate --network https://...` should work like a local path without re-downloading a
several-hundred-MB pickle on every run, and an interrupted download must never leave a file that a later run
mistakes for a complete one. So the file is streamed into a temporary file in the cache folder, its length checked
against Content-Length, fsynced, and only then renamed to its final name (os.replace is atomic on one filesystem).

Cache folder: $STYLEGAN_DOWNLOAD_DIR, else $STYLEGAN_CACHE_DIR/downloads, else $XDG_CACHE_HOME/stylegan/downloads,
else ~/.cache/stylegan/downloads. File name: the first 16 hex digits of sha256(url), '_', the URL's basename, so two
URLs with the same basename never collide and a human can still tell what the file is.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, Optional, Union

from tqdm import tqdm

DOWNLOAD_ENV = "STYLEGAN_DOWNLOAD_DIR"
CACHE_ENV = "STYLEGAN_CACHE_DIR"
URL_SCHEMES = ("http", "https")
CHUNK_BYTES = 1 << 20


class DownloadError(OSError):
    """The URL could not be fetched completely; the message names the URL and the reason."""


def is_url(value: str) -> bool:
    """True if `value` is an http(s) URL (anything else is treated as a local path)."""
    return urllib.parse.urlparse(str(value)).scheme.lower() in URL_SCHEMES


def download_cache_dir() -> Path:
    """Folder for downloaded networks (see the module docstring for the lookup order)."""
    if os.environ.get(DOWNLOAD_ENV):
        return Path(os.environ[DOWNLOAD_ENV]).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "downloads"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylegan" / "downloads"


def cached_name(url: str) -> str:
    """Cache file name for `url`: sha256 prefix + sanitized basename (stable across runs and machines)."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    basename = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    basename = re.sub(r"[^A-Za-z0-9._-]", "_", basename).lstrip(".") or "download"
    return f"{digest}_{basename[:100]}"


def download(url: str, cache_dir: Optional[Union[str, Path]] = None, progress: Optional[bool] = None,
             timeout: float = 60.0) -> Path:
    """Local path of `url`'s content, downloading it on first use; later calls make no request at all.

    progress: True/False shows/hides the tqdm bar; None shows it only on a terminal. Raises DownloadError (an
    OSError) on HTTP errors, unreachable hosts, timeouts and truncated transfers; nothing is left in the cache then.
    """
    if not is_url(url):
        raise ValueError(f"url={url!r} is invalid: expected an http:// or https:// URL")
    folder = Path(cache_dir) if cache_dir is not None else download_cache_dir()
    target = folder / cached_name(url)
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the download cache folder {folder}: {exc}") from exc

    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".part-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch_into(url, out, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def _fetch_into(url: str, out: BinaryIO, progress: Optional[bool], timeout: float) -> None:
    """Streams `url` into the open binary file `out`, with a progress bar; checks the length when it is known."""
    request = urllib.request.Request(url, headers={"User-Agent": "stylegan-downloader"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=f"downloading {os.path.basename(urllib.parse.urlparse(url).path) or url}",
                       disable=(not progress) if progress is not None else None, leave=False)
            with bar:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}") from exc
    if total is not None and received != total:
        raise DownloadError(f"cannot download {url}: got {received} of {total} bytes (connection dropped?)")

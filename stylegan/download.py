"""Download a network file from an http(s) URL once, into an on-disk cache, atomically.

Why: `stylegan generate --network https://...` should work like a local path without re-downloading a
several-hundred-MB pickle on every run, and an interrupted download must never leave a file that a later run
mistakes for a complete one. So the file is streamed into a temporary file in the cache folder, its length checked
against Content-Length, fsynced, and only then renamed to its final name (os.replace is atomic on one filesystem).

Cache folder: $STYLEGAN_DOWNLOAD_DIR, else the package cache's `downloads` folder (stylegan/cache_dirs.py). File name: the first 16 hex digits of sha256(url), '_', the URL's basename, so two
URLs with the same basename never collide and a human can still tell what the file is.

A download is checked before it is cached (by default: `stylegan.load` must read it), so a server that sent an
error page or a broken file cannot leave something in the cache that every later run would reuse. Each temporary
file is locked (flock) while its download runs; the next download removes the ones whose process died.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional, Union

from tqdm import tqdm

from .cache_dirs import cache_subdir

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: stale temp files are then left for the user
    fcntl = None

DOWNLOAD_ENV = "STYLEGAN_DOWNLOAD_DIR"
URL_SCHEMES = ("http", "https")
CHUNK_BYTES = 1 << 20
PART_PREFIX, PART_SUFFIX = ".part-", ".tmp"


class DownloadError(OSError):
    """The URL could not be fetched completely; the message names the URL and the reason."""


def is_url(value: str) -> bool:
    """True if `value` is an http(s) URL (anything else is treated as a local path)."""
    return urllib.parse.urlparse(str(value)).scheme.lower() in URL_SCHEMES


def download_cache_dir() -> Path:
    """Folder for downloaded networks (see the module docstring for the lookup order)."""
    if os.environ.get(DOWNLOAD_ENV):
        return Path(os.environ[DOWNLOAD_ENV]).expanduser()
    return cache_subdir("downloads")


def cached_name(url: str) -> str:
    """Cache file name for `url`: sha256 prefix + sanitized basename (stable across runs and machines)."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    basename = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    basename = re.sub(r"[^A-Za-z0-9._-]", "_", basename).lstrip(".") or "download"
    return f"{digest}_{basename[:100]}"


def check_network_file(path: Path) -> None:
    """The default check of a finished download: stylegan.load must read it (ValueError/UnsafePickleError if not)."""
    from .loading import load

    load(path)


def download(url: str, cache_dir: Optional[Union[str, Path]] = None, progress: Optional[bool] = None,
             timeout: float = 60.0, refresh: bool = False,
             verify: Optional[Callable[[Path], Any]] = check_network_file) -> Path:
    """Local path of `url`'s content, downloading it on first use; later calls make no request at all.

    progress: True/False shows/hides the tqdm bar; None shows it only on a terminal. refresh: download again even
    when cached (the cached copy is replaced only once the new one passed `verify`). verify(temp_path) runs on the
    complete file before it enters the cache; whatever it raises is raised here and nothing is cached (None: no
    check). Raises DownloadError (an OSError) on HTTP errors, unreachable hosts, timeouts and truncated
    transfers; nothing is left in the cache then.
    """
    if not is_url(url):
        raise ValueError(f"url={url!r} is invalid: expected an http:// or https:// URL")
    folder = Path(cache_dir) if cache_dir is not None else download_cache_dir()
    target = folder / cached_name(url)
    if target.is_file() and not refresh:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the download cache folder {folder}: {exc}") from exc

    remove_stale_parts(folder)
    with _FolderLock(folder, exclusive=False):  # a cleaner never sees our file before it is locked
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=PART_PREFIX, suffix=PART_SUFFIX)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is closed, by us or by our death
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch_into(url, out, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
            if verify is not None:
                _verify(verify, Path(tmp_name), url)
            os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def _verify(verify: Callable[[Path], Any], path: Path, url: str) -> None:
    """Runs the check; its ValueError/UnpicklingError is raised again naming the URL instead of the temp file."""
    try:
        verify(path)
    except (ValueError, pickle.UnpicklingError) as exc:
        reason = str(exc).replace(f"{path}: ", "").replace(str(path), "the download")
        raise type(exc)(f"{url}: the downloaded file does not load, so it was not cached: {reason}") from None


class _FolderLock:
    """flock on the cache folder itself: shared while a download creates its temp file, exclusive while stale
    temp files are removed (so a just-created, not yet locked, temp file is never taken for stale)."""

    def __init__(self, folder: Path, exclusive: bool) -> None:
        self.path, self.exclusive, self.fd = folder, exclusive, None

    def __enter__(self) -> "_FolderLock":
        if fcntl is not None:
            self.fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock


def remove_stale_parts(folder: Union[str, Path]) -> list:
    """Removes the temp files of downloads whose process died (their flock is gone); returns the removed paths.

    Why: a killed download cannot clean up after itself, and its partial file would otherwise stay forever.
    """
    folder = Path(folder)
    if fcntl is None or not folder.is_dir():
        return []
    removed = []
    with _FolderLock(folder, exclusive=True):
        for part in folder.glob(f"{PART_PREFIX}*{PART_SUFFIX}"):
            try:
                fd = os.open(part, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live download holds it
            finally:
                os.close(fd)
            try:
                part.unlink()
                removed.append(part)
            except OSError:
                pass
    return removed


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

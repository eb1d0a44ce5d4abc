"""Downloads into the gancore cache: a temporary name, a checked sha256, one download per machine.

A file is fetched once into ``$GANCORE_CACHE`` (default ``~/.cache/gancore``), under
``downloads/<hash of the URL>/<file name>``. It is written to a temporary name and moved into
place only once complete and, where a checksum is known (given, or the hash prefix in the file's
name as torch.hub names its files), only once it matches: a partial or corrupt file is never
used. Processes that want the same file at once (torchrun ranks) take turns on a lock file, so
one downloads and the others find it. Offline (``GANCORE_OFFLINE=1``, ``HF_HUB_OFFLINE=1``, or
no network) the error is one line naming the file, its URL and where to put it by hand.
"""

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

try:  # POSIX; elsewhere concurrent processes may both download (each still writes atomically)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["CACHE_ENV", "DownloadError", "cache_dir", "cached_path", "download", "is_offline", "sha256_of"]

#: The environment variable naming gancore's cache folder.
CACHE_ENV = "GANCORE_CACHE"
_CHUNK = 1 << 20
_TRUE = {"1", "true", "yes", "on"}


class DownloadError(RuntimeError):
    """A file could not be fetched (offline, unreachable, wrong checksum); the message names it."""


def cache_dir() -> Path:
    """The gancore cache: ``$GANCORE_CACHE``, default ``~/.cache/gancore``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gancore").expanduser()


def is_offline() -> bool:
    """Whether downloads are switched off (``GANCORE_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("GANCORE_OFFLINE", "HF_HUB_OFFLINE"))


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_name(url: str, filename: str | None) -> str:
    name = filename or Path(urlsplit(url).path).name
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DownloadError(f"{url}: names no file; give filename=...")
    return name


def cached_path(url: str, filename: str | None = None) -> Path:
    """Where :func:`download` keeps ``url`` (whether or not it is there yet)."""
    folder = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "downloads" / folder / _file_name(url, filename)


def _expected(name: str, sha256: str | None) -> str | None:
    """The pinned checksum, or the prefix torch.hub-style names carry (``name-<hex>.ext``)."""
    if sha256:
        return sha256.lower()
    match = re.search(r"-([0-9a-f]{8,64})\.", name)
    return match.group(1) if match else None


def _matches(digest: str, expected: str | None) -> bool:
    return expected is None or digest.startswith(expected)


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    lock = target.with_name(target.name + ".lock")
    with lock.open("a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch(url: str, tmp: Path, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``tmp``; returns its sha256."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "gancore"})
    with urllib.request.urlopen(request, timeout=timeout) as response, tmp.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=tmp.name.split(".part")[0],
                  disable=not progress, file=sys.stderr) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
        if total is not None and out.tell() != total:
            raise DownloadError(f"{url}: the connection closed after {out.tell()} of {total} bytes")
    return digest.hexdigest()


def download(
    url: str,
    *,
    sha256: str | None = None,
    filename: str | None = None,
    dest: str | Path | None = None,
    check: Callable[[Path], None] | None = None,
    progress: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """The local path of ``url``'s file, fetched into the cache unless it is there already.

    ``sha256`` pins the file's checksum (without it, a hash prefix in the file's name is
    checked, as torch.hub does); ``check(path)`` may check the content too (raising
    ``ValueError`` naming the problem). A cached file that fails its checksum is fetched again; a
    download that fails either is deleted and raises :class:`DownloadError`, as does being
    offline (the message says where to put the file by hand). ``dest`` keeps the file at a path of
    your choosing instead of the cache's downloads folder. ``progress`` (default: when stderr is
    a terminal) shows a progress bar.
    """
    target = Path(dest) if dest is not None else cached_path(url, filename)
    expected = _expected(target.name, sha256)
    if target.is_file() and _matches(sha256_of(target), expected):
        return target
    if is_offline():
        raise DownloadError(
            f"{target.name} is not in the cache and downloads are off (GANCORE_OFFLINE / HF_HUB_OFFLINE): "
            f"fetch {url} and put it at {target}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        if target.is_file() and _matches(sha256_of(target), expected):
            return target  # another process fetched it while this one waited
        tmp = target.with_name(f"{target.name}.part-{os.getpid()}")
        try:
            digest = _fetch(url, tmp, sys.stderr.isatty() if progress is None else progress, timeout)
            if not _matches(digest, expected):
                raise DownloadError(
                    f"{url}: sha256 {digest} does not match the expected {expected}; the download was deleted"
                )
            if check is not None:
                try:
                    check(tmp)
                except ValueError as exc:
                    raise DownloadError(f"{url}: {exc}; the download was deleted") from None
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(
                f"could not download {url} ({reason}); without a network, fetch it elsewhere and put it at {target}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
    return target

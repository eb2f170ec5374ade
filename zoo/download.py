"""Downloads of weight files into the zoo cache, with checksums, through gdown (Google Drive and plain URLs).

A file is downloaded into a temporary folder beside its destination, its sha256 checked against what
the registry knows, and only then renamed into place; a failed or mismatching download leaves
nothing behind. Each file has a total deadline (a server trickling a byte at a time is cut off, not
only one that stalls) and a size cap (an endless stream stops being written at the cap).
``DARTS_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` means no network at all. The cache lives in
``$DARTS_ZOO_HOME``, else ``$XDG_CACHE_HOME/darts-zoo``, else ``~/.cache/darts-zoo``.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Optional, Union

from .device import progress_bar
from .fileio import sha256_file
from .limits import MAX_CHECKPOINT_BYTES

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

TIMEOUT_S = 60.0  # connect and read timeout of one request; a stalled server fails over to the next source
DEADLINE_S = 1800.0  # all the time one file may take (30 min: 100 MB at 60 kB/s), however the server sends it
MAX_BYTES = MAX_CHECKPOINT_BYTES  # the cap on a file whose size nothing tells


class DownloadLimitError(OSError):
    """A download stopped at its deadline or size cap (the partial file is deleted)."""


class ChecksumError(ValueError):
    """A file whose sha256 is not the one the registry expects (it has been deleted)."""


def zoo_home() -> Path:
    """Where downloaded files and converted models are kept: ``$DARTS_ZOO_HOME``, else
    ``$XDG_CACHE_HOME/darts-zoo`` (the XDG base directory convention), else ``~/.cache/darts-zoo``."""
    if os.environ.get("DARTS_ZOO_HOME"):
        return Path(os.environ["DARTS_ZOO_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).expanduser().is_absolute():  # the spec: a relative value is invalid and ignored
        return Path(xdg).expanduser() / "darts-zoo"
    return Path.home() / ".cache" / "darts-zoo"


def offline() -> bool:
    flags = ("HF_HUB_OFFLINE", "DARTS_ZOO_OFFLINE")
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in flags)


def url_prefix() -> Optional[str]:
    """A site's own mirror (``DARTS_ZOO_URL_PREFIX=http://host/path``), asked for each file by its name."""
    prefix = os.environ.get("DARTS_ZOO_URL_PREFIX", "").strip()
    return prefix.rstrip("/") if prefix else None


def verify(path: PathLike, sha256: Optional[str] = None, sha256_prefix: Optional[str] = None) -> str:
    """The file's sha256, checked against a full digest and/or a prefix; a mismatch deletes the file."""
    digest = sha256_file(path)
    want = (sha256 or sha256_prefix or "").lower()
    if want and not digest.startswith(want):
        Path(path).unlink(missing_ok=True)
        raise ChecksumError(f"sha256 of {Path(path).name} is {digest}, but the registry expects {want}: the file "
                            f"is damaged or not the published one (deleted)")
    return digest


class _CappedFile:
    """The file a download writes: refuses (raises) the write that would take it past ``cap`` bytes."""

    def __init__(self, f: BinaryIO, cap: int, name: str = "", progress: bool = False):
        self.f, self.cap, self.written = f, cap, 0
        self.name, self.progress, self.bar = name, progress, None

    def write(self, chunk: bytes) -> int:
        if self.written + len(chunk) > self.cap:
            raise DownloadLimitError(f"stopped at {self.cap} bytes: larger than the file can be (the server sends "
                                     f"more than it should, or without end)")
        self.written += len(chunk)
        return self.f.write(chunk)

    def flush(self) -> None:
        self.f.flush()

    def announced(self, done: int, total: Optional[int]) -> None:  # gdown's progress callback: the Content-Length
        if total is not None and total > self.cap:
            raise DownloadLimitError(f"the server announces {total} bytes, more than the {self.cap} the file can be")
        # Our own bar, not gdown's: gdown (quiet=False) also prints "Downloading... From: URL To: <_CappedFile
        # object at 0x...>" before it knows whether the download works, noise above our one-line error.
        if self.progress and self.bar is None:
            self.bar = progress_bar(None, total, self.name, True, unit="B")
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch(dest: PathLike, url: Optional[str] = None, gdrive_id: Optional[str] = None, sha256: Optional[str] = None,
          sha256_prefix: Optional[str] = None, timeout: Optional[float] = None, progress: bool = True,
          max_bytes: Optional[int] = None, deadline: Optional[float] = None) -> str:
    """Download ``url`` (or the Google Drive file ``gdrive_id``) to ``dest``, verified; returns its sha256.

    ``timeout`` bounds each connect and read, ``deadline`` the whole file (seconds), ``max_bytes`` its size;
    a download past either is stopped and deleted.
    """
    import gdown
    from gdown.exceptions import DownloadCancelled, DownloadError

    if offline():
        raise OSError("offline (DARTS_ZOO_OFFLINE or HF_HUB_OFFLINE is set): no download attempted")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    deadline = DEADLINE_S if deadline is None else deadline
    tmpdir = tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.")
    cancel = threading.Event()
    timer = threading.Timer(deadline, cancel.set)  # gdown checks the event between (and within) reads
    timer.daemon = True
    try:
        part = Path(tmpdir) / dest.name
        with open(part, "wb") as f:
            out = _CappedFile(f, MAX_BYTES if max_bytes is None else max_bytes, dest.name, progress)
            kw = dict(output=out, quiet=True, timeout=TIMEOUT_S if timeout is None else timeout,
                      cancel=cancel, progress=out.announced)
            timer.start()
            try:
                if gdrive_id:
                    gdown.download(id=gdrive_id, **kw)
                else:
                    gdown.download(url=url, **kw)
            except DownloadCancelled:
                raise DownloadLimitError(f"not finished after {deadline:g} s, the deadline of one file (the server "
                                         f"sends too slowly); stopped") from None
            except DownloadError as e:  # gdown's own (a short body, no Drive file): an OSError like requests' errors
                raise OSError(f"{type(e).__name__}: {str(e)[:300]}") from None
            finally:
                out.close_bar()
        digest = verify(part, sha256, sha256_prefix)
        os.replace(part, dest)
        log.info("downloaded %s (sha256 %s)", dest, digest)
        return digest
    finally:
        timer.cancel()
        shutil.rmtree(tmpdir, ignore_errors=True)


__all__ = ["fetch", "verify", "zoo_home", "offline", "url_prefix", "ChecksumError", "DownloadLimitError", "TIMEOUT_S",
           "DEADLINE_S", "MAX_BYTES"]

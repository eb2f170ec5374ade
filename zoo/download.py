"""Downloads of weight files into the zoo cache, with checksums, through gdown (Google Drive and plain URLs).

A file is downloaded into a temporary folder beside its destination, its sha256 checked against what
the registry knows, and only then renamed into place; a failed or mismatching download leaves
nothing behind. ``DARTS_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` means no network at all.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

from .fileio import sha256_file

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

TIMEOUT_S = 60.0  # connect and read timeout of one request; a stalled server fails over to the next source


class ChecksumError(ValueError):
    """A file whose sha256 is not the one the registry expects (it has been deleted)."""


def zoo_home() -> Path:
    """Where downloaded files and converted models are kept: ``$DARTS_ZOO_HOME`` or ``~/.cache/darts-zoo``."""
    return Path(os.environ.get("DARTS_ZOO_HOME", Path.home() / ".cache" / "darts-zoo")).expanduser()


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


def fetch(dest: PathLike, url: Optional[str] = None, gdrive_id: Optional[str] = None, sha256: Optional[str] = None,
          sha256_prefix: Optional[str] = None, timeout: Optional[float] = None, progress: bool = True) -> str:
    """Download ``url`` (or the Google Drive file ``gdrive_id``) to ``dest``, verified; returns its sha256."""
    import gdown

    if offline():
        raise OSError("offline (DARTS_ZOO_OFFLINE or HF_HUB_OFFLINE is set): no download attempted")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        part = Path(tmpdir) / dest.name
        kw = dict(output=str(part), quiet=not progress, timeout=TIMEOUT_S if timeout is None else timeout)
        if gdrive_id:
            gdown.download(id=gdrive_id, **kw)
        else:
            gdown.download(url=url, **kw)
        if not part.is_file():
            raise OSError("the download produced no file")
        digest = verify(part, sha256, sha256_prefix)
        os.replace(part, dest)
        log.info("downloaded %s (sha256 %s)", dest, digest)
        return digest
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


__all__ = ["fetch", "verify", "zoo_home", "offline", "url_prefix", "ChecksumError", "TIMEOUT_S"]

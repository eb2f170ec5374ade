"""The Hugging Face Hub: download and publish saved-model directories with huggingface_hub.

``hf-hub:ORG/REPO[@REVISION]`` sources are fetched through huggingface_hub's cache (``HF_HOME``;
``HF_HUB_OFFLINE=1`` uses the cached snapshot of the revision).
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path
from typing import Optional, Tuple, Union

from .download import offline
from .errors import WeightsNotFoundError
from .saved import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, load_pretrained

PathLike = Union[str, os.PathLike]

HF_PREFIX = "hf-hub:"
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def parse_hub_source(source: str) -> Tuple[str, Optional[str]]:
    """``hf-hub:ORG/REPO[@REV]`` -> (repo_id, revision)."""
    spec = source[len(HF_PREFIX):] if source.startswith(HF_PREFIX) else source
    repo, _, rev = spec.partition("@")
    if not _REPO_RE.match(repo):
        raise ValueError(f"bad hub id {source!r}: expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")
    return repo, (rev or None)


# _hub_offline_if_asked's calls in flight, and huggingface_hub's switch as it was before the first of them
_OFFLINE_LOCK = threading.Lock()
_offline_calls = 0
_switch_before = False


@contextlib.contextmanager
def _hub_offline_if_asked():
    """huggingface_hub kept local-only while the zoo is offline (DARTS_ZOO_OFFLINE as well as HF_HUB_OFFLINE).

    ``local_files_only`` alone is not enough: huggingface_hub reads HF_HUB_OFFLINE once, when it is first
    imported, and without it even a cache lookup sends requests of its own (2.x fetches
    ``$HF_ENDPOINT/api/agent-harnesses`` to build its headers). Its own switch, ``constants.HF_HUB_OFFLINE``
    (read at each request and refused there), is set for the duration of the call and then put back.
    """
    global _offline_calls, _switch_before
    if not offline():
        yield
        return
    from huggingface_hub import constants

    # a process-wide switch: threads downloading at once share it, and only the last one out puts it back
    with _OFFLINE_LOCK:
        if _offline_calls == 0:
            _switch_before = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True
        _offline_calls += 1
    try:
        yield
    finally:
        with _OFFLINE_LOCK:
            _offline_calls -= 1
            if _offline_calls == 0:
                constants.HF_HUB_OFFLINE = _switch_before


def hub_download(repo_id: str, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None,
                 token: Union[str, bool, None] = None, force_download: bool = False,
                 local_files_only: bool = False) -> Path:
    """Fetch config.json and model.safetensors (and the card when present) through huggingface_hub's cache.

    Online, files are checked against the hub (ETag) and cached under ``HF_HOME``; with
    ``HF_HUB_OFFLINE=1`` (or ``local_files_only``) the cached snapshot of the revision is used. ``token``
    and ``force_download`` as huggingface_hub's. Returns the snapshot folder.
    """
    from huggingface_hub import hf_hub_download

    # DARTS_ZOO_OFFLINE as well as HF_HUB_OFFLINE (which huggingface_hub reads only when it is first imported)
    kw = dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir, repo_type="model", token=token,
              force_download=force_download, local_files_only=local_files_only or offline())
    try:
        with _hub_offline_if_asked():
            cfg = hf_hub_download(filename=CONFIG_NAME, **kw)
            hf_hub_download(filename=WEIGHTS_NAME, **kw)
    except Exception as e:
        raise WeightsNotFoundError(
            f"could not get {repo_id}{'@' + revision if revision else ''} from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the repo id, the revision, "
            f"your network (or HF_HUB_OFFLINE=1 with a populated cache) and HF_TOKEN for private repos") from None
    try:
        with _hub_offline_if_asked():
            hf_hub_download(filename=CARD_NAME, **kw)
    except Exception:  # the card is optional
        pass
    return Path(cfg).parent


class PushError(OSError):
    """A push to the hub that cannot happen or failed; nothing was published (or only what the hub says)."""


def push_token(token: Optional[str] = None) -> str:
    """The token a push will use, or PushError in one line before anything is contacted: offline, or no credentials.

    Every push goes through it (``python -m zoo push``, ``zoo.push_to_hub``, ``reproduce export --push``).
    """
    from huggingface_hub import get_token

    if offline():
        raise PushError("offline (DARTS_ZOO_OFFLINE or HF_HUB_OFFLINE is set), so nothing is pushed; unset it to "
                        "publish")
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face credentials, so nothing is pushed: log in with `hf auth login` (or "
                        "`huggingface-cli login`), set HF_TOKEN, or pass a token")
    return token


def push_to_hub(directory: PathLike, repo_id: str, token: Optional[str] = None, private: bool = False,
                revision: Optional[str] = None, commit_message: str = "Upload DARTS model (darts-zoo)",
                create: bool = True) -> str:
    """Upload a saved-model directory to the hub (creating the repo); returns the commit url."""
    from huggingface_hub import HfApi

    d = Path(directory).expanduser()
    parse_hub_source(repo_id)  # a well-formed ORG/REPO
    load_pretrained(d)  # never publish something that does not load
    token = push_token(token)
    api = HfApi(token=token)
    try:
        if create:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(d), repo_id=repo_id, repo_type="model", revision=revision,
                                 commit_message=commit_message,
                                 allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "*.png", "*.svg"])
    except Exception as e:  # HTTP, network (httpx/requests), permissions: their types vary with the client version
        first = str(e).strip().splitlines()
        raise PushError(f"pushing {d} to {repo_id} failed ({type(e).__name__}: {first[0][:200] if first else ''}); "
                        f"check the repo id, your network and that your token may write there") from None
    return str(getattr(info, "commit_url", info))


__all__ = ["parse_hub_source", "hub_download", "push_to_hub", "push_token", "PushError", "HF_PREFIX"]

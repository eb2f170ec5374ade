"""``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` on the network classes, as huggingface_hub's
``PyTorchModelHubMixin`` names and calls them, over the zoo's own saved-model files.

``NetworkCIFAR.from_pretrained("ORG/REPO")`` (or a local directory) reads the same ``config.json`` +
``model.safetensors`` that ``zoo.save_pretrained`` writes and ``zoo.load`` reads, with the same checks
(size, sha256, the registry's digest for a repo an entry publishes to); ``model.save_pretrained(DIR)``
writes them with our ``README.md`` model card, keeping what a loaded model's config says of its
architecture (name, dataset) and, while they are the loaded weights byte for byte, of its weights (metrics,
source: not after training, a new head or an adapted stem); ``model.push_to_hub("ORG/REPO")`` publishes
them. huggingface_hub's own mixin is not inherited: it would write its own config.json and card over ours.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from .errors import ModelLoadError
from .hub import HF_PREFIX, hub_download, parse_hub_source
from .hub import push_to_hub as push_directory
from .registry import hub_sha256
from .saved import adapt_loaded, load_pretrained, save_pretrained, weights_fingerprint

PathLike = Union[str, os.PathLike]

# The card fields save_pretrained takes (zoo.save_pretrained's).
CARD_FIELDS = ("name", "metrics", "metrics_source", "source", "description", "dataset")
# What a loaded model's config says of its architecture, carried into the card of a copy saved from it ...
_ARCHITECTURE_FIELDS = ("name", "dataset")
# ... and of its weights, carried only while the weights are still the loaded ones, byte for byte (not after
# training, a new head or an adapted stem).
_WEIGHTS_FIELDS = ("metrics", "metrics_source", "source", "description")


def load_saved(source: PathLike, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None,
               **hub_options: Any):
    """A saved model from a local directory, or from ``ORG/REPO`` / ``hf-hub:ORG/REPO[@REV]`` on the hub
    (``hub_options``: :func:`zoo.hub.hub_download`'s ``token``, ``force_download``, ``local_files_only``)."""
    text = str(source)
    if not text.startswith(HF_PREFIX) and Path(text).expanduser().is_dir():
        return load_pretrained(Path(text).expanduser())
    repo, rev = parse_hub_source(text)
    # only what the caller asked for (token=False too: huggingface_hub's "send no token")
    options = {k: v for k, v in hub_options.items() if (v is not None if k == "token" else v)}
    return load_pretrained(hub_download(repo, revision or rev, cache_dir=cache_dir, **options),
                           expected_sha256=hub_sha256(repo))


class HubMixin:
    """Hugging Face Hub methods of the zoo's networks (huggingface_hub's ``PyTorchModelHubMixin`` interface)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: PathLike, *, force_download: bool = False,
                        token: Union[str, bool, None] = None, cache_dir: Optional[PathLike] = None,
                        local_files_only: bool = False, revision: Optional[str] = None,
                        device: Union[str, torch.device] = "cpu", num_classes: Optional[int] = None,
                        in_chans: Optional[int] = None, features_only: bool = False,
                        out_indices: Optional[Sequence[int]] = None):
        """Load a saved model (a directory, or a hub repo id; ``token`` or ``HF_TOKEN`` for private ones) as this
        class, in eval mode; the hub options as huggingface_hub's; ``num_classes``, ``in_chans``, ``features_only``
        and ``out_indices`` as in ``zoo.load``."""
        model = load_saved(pretrained_model_name_or_path, revision, cache_dir, token=token,
                           force_download=force_download, local_files_only=local_files_only)
        if not isinstance(model, cls):
            raise ModelLoadError(f"{pretrained_model_name_or_path} holds a {type(model).__name__}, not a "
                                 f"{cls.__name__}: load it with {type(model).__name__}.from_pretrained or zoo.load")
        adapt_loaded(model, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                     out_indices=out_indices)
        return model.to(device).eval()

    def _card_fields(self, given: dict) -> dict:
        saved = getattr(self, "zoo_config", None) or {}
        recorded = getattr(self, "zoo_weights", None)
        unchanged = bool(recorded) and weights_fingerprint(self) == recorded
        keep = _ARCHITECTURE_FIELDS + (_WEIGHTS_FIELDS if unchanged else ())
        fields = {k: saved[k] for k in keep if saved.get(k)}
        if fields.get("metrics"):
            fields.setdefault("metrics_source", saved.get("metrics_source", ""))
        return {**fields, **given}

    def save_pretrained(self, save_directory: PathLike, *, repo_id: Optional[str] = None, push_to_hub: bool = False,
                        model_card_kwargs: Optional[dict] = None, **kwargs: Any) -> Optional[str]:
        """Write config.json, model.safetensors and the README.md card (card fields, as keywords or in
        ``model_card_kwargs``: ``zoo.save_pretrained``'s name, metrics, metrics_source, source, description,
        dataset; a loaded model keeps its own, those of its weights only while they are unchanged);
        with ``push_to_hub=True`` also publish the directory (to ``repo_id``, default its folder name; the other
        keywords as :meth:`push_to_hub`'s) and return the commit url."""
        card = {**(model_card_kwargs or {}), **{k: kwargs.pop(k) for k in list(kwargs) if k in CARD_FIELDS}}
        if kwargs and not push_to_hub:
            raise TypeError(f"save_pretrained got {sorted(kwargs)}: neither card fields ({', '.join(CARD_FIELDS)}) "
                            f"nor, with push_to_hub=True, push_to_hub's keywords (config.json is the network's own)")
        out = save_pretrained(self, save_directory, **self._card_fields(card))
        if push_to_hub:
            return self._push_directory(out, repo_id or out.name, **kwargs)
        return None

    def push_to_hub(self, repo_id: str, *, commit_message: str = "Upload DARTS model (darts-zoo)",
                    private: Optional[bool] = None, token: Optional[str] = None, branch: Optional[str] = None,
                    revision: Optional[str] = None, model_card_kwargs: Optional[dict] = None, **card: Any) -> str:
        """Save to a temporary directory as :meth:`save_pretrained` does and upload it to ``branch`` (huggingface_hub's
        name; ``revision`` is the same); returns the commit url."""
        with tempfile.TemporaryDirectory() as tmp:
            out = save_pretrained(self, Path(tmp) / "model", **self._card_fields({**(model_card_kwargs or {}), **card}))
            return self._push_directory(out, repo_id, commit_message=commit_message, private=private, token=token,
                                        branch=branch, revision=revision)

    @staticmethod
    def _push_directory(out: Path, repo_id: str, commit_message: str = "Upload DARTS model (darts-zoo)",
                        private: Optional[bool] = None, token: Optional[str] = None, branch: Optional[str] = None,
                        revision: Optional[str] = None) -> str:
        if branch and revision and branch != revision:
            raise ValueError(f"branch={branch!r} and revision={revision!r}: give one branch to commit to")
        return push_directory(out, repo_id, token=token, private=bool(private), revision=branch or revision,
                              commit_message=commit_message)


__all__ = ["HubMixin", "load_saved"]

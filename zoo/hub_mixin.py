"""``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` on the network classes, as huggingface_hub's
``PyTorchModelHubMixin`` names and calls them, over the zoo's own saved-model files.

``NetworkCIFAR.from_pretrained("ORG/REPO")`` (or a local directory) reads the same ``config.json`` +
``model.safetensors`` that ``zoo.save_pretrained`` writes and ``zoo.load`` reads, with the same checks
(size, sha256, the registry's digest for a repo an entry publishes to); ``model.save_pretrained(DIR)``
writes them with our ``README.md`` model card, keeping what a loaded model's config says of its
weights (name, metrics, source); ``model.push_to_hub("ORG/REPO")`` publishes them. huggingface_hub's
own mixin is not inherited: it would write its own config.json and card over ours.
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
from .saved import adapt_loaded, load_pretrained, save_pretrained

PathLike = Union[str, os.PathLike]

# What a loaded model's config says of its weights, carried into the card of a copy saved from it.
_CARD_FIELDS = ("name", "metrics", "metrics_source", "source", "description", "dataset")


def load_saved(source: PathLike, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None):
    """A saved model from a local directory, or from ``ORG/REPO`` / ``hf-hub:ORG/REPO[@REV]`` on the hub."""
    text = str(source)
    if not text.startswith(HF_PREFIX) and Path(text).expanduser().is_dir():
        return load_pretrained(Path(text).expanduser())
    repo, rev = parse_hub_source(text)
    return load_pretrained(hub_download(repo, revision or rev, cache_dir=cache_dir), expected_sha256=hub_sha256(repo))


class HubMixin:
    """Hugging Face Hub methods of the zoo's networks (huggingface_hub's ``PyTorchModelHubMixin`` interface)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: PathLike, *, revision: Optional[str] = None,
                        cache_dir: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu",
                        num_classes: Optional[int] = None, in_chans: Optional[int] = None,
                        features_only: bool = False, out_indices: Optional[Sequence[int]] = None):
        """Load a saved model (a directory, or a hub repo id, ``HF_TOKEN`` for private ones) as this class,
        in eval mode; ``num_classes``, ``in_chans``, ``features_only`` and ``out_indices`` as in ``zoo.load``."""
        model = load_saved(pretrained_model_name_or_path, revision, cache_dir)
        if not isinstance(model, cls):
            raise ModelLoadError(f"{pretrained_model_name_or_path} holds a {type(model).__name__}, not a "
                                 f"{cls.__name__}: load it with {type(model).__name__}.from_pretrained or zoo.load")
        adapt_loaded(model, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                     out_indices=out_indices)
        return model.to(device).eval()

    def _card_fields(self, given: dict) -> dict:
        saved = getattr(self, "zoo_config", None) or {}
        fields = {k: saved[k] for k in _CARD_FIELDS if saved.get(k)}
        if fields.get("metrics"):
            fields.setdefault("metrics_source", saved.get("metrics_source", ""))
        return {**fields, **given}

    def save_pretrained(self, save_directory: PathLike, *, repo_id: Optional[str] = None, push_to_hub: bool = False,
                        **card: Any) -> Optional[str]:
        """Write config.json, model.safetensors and the README.md card (``card``: ``zoo.save_pretrained``'s
        name, metrics, metrics_source, source, description, dataset; a loaded model keeps its own);
        with ``push_to_hub=True`` also publish the directory (to ``repo_id``, default its folder name) and
        return the commit url."""
        out = save_pretrained(self, save_directory, **self._card_fields(card))
        if push_to_hub:
            return push_directory(out, repo_id or out.name)
        return None

    def push_to_hub(self, repo_id: str, *, commit_message: str = "Upload DARTS model (darts-zoo)",
                    private: bool = False, token: Optional[str] = None, revision: Optional[str] = None,
                    **card: Any) -> str:
        """Save to a temporary directory as :meth:`save_pretrained` does and upload it; returns the commit url."""
        with tempfile.TemporaryDirectory() as tmp:
            out = save_pretrained(self, Path(tmp) / "model", **self._card_fields(card))
            return push_directory(out, repo_id, token=token, private=private, revision=revision,
                                  commit_message=commit_message)


__all__ = ["HubMixin", "load_saved"]

"""Errors of loading models that users can cause; each message names the problem and the fix."""
from __future__ import annotations


class ModelLoadError(ValueError):
    """A saved model that cannot be loaded (bad config, corrupt or mismatched weights)."""


class WeightsNotFoundError(FileNotFoundError):
    """No weight source of a model worked; the message lists each source, why it failed, and what to do."""


__all__ = ["ModelLoadError", "WeightsNotFoundError"]

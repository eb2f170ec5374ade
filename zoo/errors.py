"""Errors of loading models that users can cause; each message names the problem and the fix."""
from __future__ import annotations


class ModelLoadError(ValueError):
    """A saved model that cannot be loaded (bad config, corrupt or mismatched weights)."""


class WeightsNotFoundError(FileNotFoundError):
    """No weight source of a model worked; the message lists each source, why it failed, and what to do."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: corrupt, truncated, or not what it should be."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that names a global outside the allow-list (it could run code); nothing was executed."""


__all__ = ["ModelLoadError", "WeightsNotFoundError", "CheckpointError", "UnsafeCheckpointError"]

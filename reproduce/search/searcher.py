"""What both searchers share (:class:`Searcher`), and how a run's processes enter its config
(:func:`with_processes`)."""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

from .. import config as run_config
from ..config import ConfigError
from ..distributed import Dist
from . import architect, bn_groups
from .cnn_supernet import arch_softmax

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]
# (epoch, step, the step's numbers): what the searchers call after every step
StepHook = Callable[[int, int, Dict[str, object]], None]


class Searcher:
    """What the conv and recurrent searchers share: processes, BatchNorm statistics, the Adam step of the
    architecture, logits as plain lists, state."""

    d: Dist
    model: nn.Module
    alphas: List[torch.Tensor]
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    alpha_names: tuple

    def use_processes(self, d: Optional[Dist]) -> Dist:
        """This searcher's processes (one process on ``self.device`` when ``d`` is None), and the model's
        BatchNorm statistics as the config's ``bn_groups`` / ``sync_bn`` ask for them."""
        self.d = d if d is not None else Dist(device=self.device)
        c = self.config
        groups = bn_groups.resolve_groups(c.bn_groups, self.d.world, c.sync_bn)
        if c.sync_bn and self.d.enabled:
            if self.device.type != "cuda":
                raise ConfigError("--sync-bn needs GPUs (SyncBatchNorm); on CPUs use --bn-groups")
            self.model = bn_groups.use_sync(self.model)
        else:
            self.model = bn_groups.use_groups(self.model, groups // self.d.world)
        return self.d

    def end_epoch_statistics(self) -> None:
        """Average the BatchNorm running statistics over the processes (each updated them from its groups)."""
        self.d.average_(bn_groups.running_statistics(self.model))

    def arch_update(self, grads: List[torch.Tensor]) -> None:
        self.a_opt.zero_grad(set_to_none=True)
        architect.set_grads_(self.alphas, grads)
        self.a_opt.step()

    def alphas_dict(self) -> Dict[str, list]:
        return {name: a.detach().cpu().tolist() for name, a in zip(self.alpha_names, self.alphas)}

    def softmax_dict(self) -> Dict[str, list]:
        return {name: arch_softmax(name, a.detach().float().cpu(), getattr(self.config, "steps", None)).tolist()
                for name, a in zip(self.alpha_names, self.alphas)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "alphas": [a.detach().clone() for a in self.alphas],
                "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for a, s in zip(self.alphas, state["alphas"]):
                a.copy_(s)
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])


def keeping_loss(loss_fn, world: int = 1):
    """``loss_fn`` (returning (loss, aux)) wrapped to keep its last loss, detached, in the returned dict.

    The searchers' losses are this process's mean divided by the ``world`` processes (so that the summed
    gradients are those of the global mean); the kept loss is multiplied back: this process's mean, as the
    live logs show every loss of a step."""
    seen: Dict[str, torch.Tensor] = {}

    def loss():
        value, aux = loss_fn()
        seen["loss"] = value.detach() * world if world != 1 else value.detach()
        return value, aux
    return loss, seen


def with_processes(config, world: int):
    """``config`` for a run of ``world`` processes: ``processes`` set, ``bn_groups`` resolved (see
    :func:`.bn_groups.resolve_groups`); a per-process default is said once in the log."""
    if config.processes not in (1, world):
        raise ConfigError(f"processes {config.processes} is set by torchrun (WORLD_SIZE), which says {world}; "
                          "drop --processes")
    groups = bn_groups.resolve_groups(config.bn_groups, world, config.sync_bn)
    if groups != config.bn_groups:
        log.warning("%d processes: BatchNorm statistics per process (bn_groups %d), not the paper's whole-batch "
                    "statistics; the run is reported as not comparable (use --sync-bn on GPUs)", world, groups)
    if (world, groups) == (config.processes, config.bn_groups):
        return config  # nothing to change: the config built and validated once stays the run's
    return run_config.build(type(config), {"processes": world, "bn_groups": groups}, base=config)

"""Architecture gradients of DARTS, first and second order, as the original architect.py computes them.

Where that holds: the conv search (``cnn/architect.py``) and, by default, the recurrent search
(``rnn/architect.py``) compute exactly the original's quantities below. The one place an option
departs from the original is the recurrent search's tied embedding/decoder weight in the virtual
step (``hold``, below; the search config's ``virtual_step_tied_weight``).

Nothing is rebuilt: the weights are moved in place (to w', w+ and w-) on the same module and put
back exactly from a copy; gradients are asked for only where they are used
(``torch.autograd.grad`` w.r.t. exactly the tensors needed), so no weight gradient is computed
and thrown away.

Second order (paper eq. 7-8, original ``_backward_step_unrolled``):

    w'    = w - lr * (momentum * buf + g + weight_decay * w),  g = grad_w L_train(w, a)
            (``buf`` the SGD momentum buffer, zero before the first step; the recurrent search has
            no momentum and clips g to ``clip`` first, remembering the coefficient ``coef``)
    d_a   = grad_a L_val(w', a),   v = grad_w' L_val(w', a)   (v clipped too in the recurrent search)
    eps   = r / ||v||,  w+- = w +- eps * v
    grad  = d_a - lr * coef * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps)

Under N processes (``all_reduce``: ``Dist.all_reduce_sum_``, in place over a list of tensors) each
loss is the local sum divided by the global count, so summed gradients are those of the global mean
loss; ``torch.autograd.grad`` bypasses DDP's hooks, so exactly these are summed, each as one flat
buffer: g of the virtual step (before the recurrent clip, whose coefficient then comes from the
global norm); ``[d_a, v]`` together (so eps = r / ||v|| is the same on every rank); the two
Hessian-vector terms. The virtual step and everything after run identically on every rank.

``coef`` is 1 for the conv search; for the recurrent one it is ``clip / (||g|| + 1e-6)``, used
unclamped exactly as the original does.

``hold``: weights the virtual step leaves at w. The original recurrent search builds its unrolled
model from ``state_dict()`` with only ``encoder.weight`` replaced by w'; ``decoder.weight``, the
same tied tensor, keeps w and is loaded last, so in the unrolled model the tied weight is at w
while every other weight is at w'. ``d_a`` and ``v`` are taken there, and the finite difference
then moves every weight, the tied one too (``v`` includes its gradient). Passing the tied weight
in ``hold`` computes that (the default of the recurrent search); an empty ``hold`` is the paper's
formula, where the virtual step moves every weight. The BatchNorm running statistics the pass at w' updates are
restored afterwards (the original updates those of a throwaway copy).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

LossFn = Callable[[], Tuple[torch.Tensor, object]]
AllReduce = Callable[[List[torch.Tensor]], None]


def _no_reduce(tensors: List[torch.Tensor]) -> None:
    """One process: nothing to sum."""


def _norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all ``tensors`` together; the per-tensor norms come from one multi-tensor kernel."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def copy_tensors_(dst: Sequence[torch.Tensor], src: Sequence[torch.Tensor]) -> None:
    """``d.copy_(s)`` for every pair, as one multi-tensor copy per (device, dtype) group."""
    groups: Dict[tuple, Tuple[List[torch.Tensor], List[torch.Tensor]]] = {}
    for d, s in zip(dst, src):
        group = groups.setdefault((s.device, s.dtype), ([], []))
        group[0].append(d)
        group[1].append(s)
    with torch.no_grad():
        for d, s in groups.values():
            torch._foreach_copy_(d, s)


def _copies(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Detached copies of ``tensors``. On a GPU one kernel per dtype instead of one per tensor matters:
    the full-size supernet has ~900 weight tensors and ~2,700 BatchNorm buffers, saved every step."""
    out = [torch.empty_like(t) for t in tensors]
    copy_tensors_(out, [t.detach() for t in tensors])
    return out


def clip_(grads: List[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The original rnn architect's ``_clip``: scale in place when the coefficient is < 1; return it."""
    coef = max_norm / (_norm(grads) + 1e-6)
    if coef < 1:
        torch._foreach_mul_(grads, coef)
    return coef


def momentum_buffers(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> Optional[List[torch.Tensor]]:
    """The SGD momentum buffers of ``params``, or None if any is missing (before the first step)."""
    bufs = []
    for p in params:
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is None:
            return None
        bufs.append(buf)
    return bufs


def _bn_buffers(module: nn.Module) -> List[torch.Tensor]:
    return [b for name, b in module.named_buffers() if name.rsplit(".", 1)[-1] in
            ("running_mean", "running_var", "num_batches_tracked")]


def first_order(alphas: Sequence[torch.Tensor], valid_loss: LossFn,
                all_reduce: AllReduce = _no_reduce) -> Tuple[List[torch.Tensor], object]:
    """``grad_a L_val(w, a)`` at the current weights; no weight gradient is computed."""
    loss, aux = valid_loss()
    grads = list(torch.autograd.grad(loss, list(alphas)))
    all_reduce(grads)
    return grads, aux


def virtual_step_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float, momentum: float = 0.0,
                  weight_decay: float = 0.0, buffers: Optional[Sequence[torch.Tensor]] = None) -> None:
    """In place: ``w <- w - lr * (momentum * buf + g + weight_decay * w)`` (buf omitted when None)."""
    with torch.no_grad():
        d = torch._foreach_add(list(grads), list(params), alpha=weight_decay) if weight_decay else [
            g.clone() for g in grads]
        if buffers is not None and momentum:
            torch._foreach_add_(d, list(buffers), alpha=momentum)
        torch._foreach_add_(list(params), d, alpha=-lr)


def second_order(model: nn.Module, alphas: Sequence[torch.Tensor], train_loss: LossFn, valid_loss: LossFn, lr: float,
                 momentum: float = 0.0, weight_decay: float = 0.0, buffers: Optional[Sequence[torch.Tensor]] = None,
                 clip: Optional[float] = None, r: float = 0.01, hold: Sequence[torch.Tensor] = (),
                 all_reduce: AllReduce = _no_reduce) -> Tuple[List[torch.Tensor], object]:
    """The unrolled architecture gradient (see the module docstring); returns (grads, aux of valid_loss).

    ``train_loss``/``valid_loss`` evaluate the model's current weights (they are moved in place);
    ``hold``: weights of ``model`` the virtual step leaves at w (the original's tied weight).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    held = [i for i, p in enumerate(params) if any(p is h for h in hold)]
    if len(held) != len(hold):
        raise ValueError("hold: every tensor must be a trainable parameter of the model")
    alphas = list(alphas)
    loss, _ = train_loss()
    grads = list(torch.autograd.grad(loss, params))
    all_reduce(grads)
    coef = clip_(grads, clip) if clip is not None else 1.0
    w = _copies(params)
    bn = _bn_buffers(model)
    bn_saved = _copies(bn)
    try:
        virtual_step_(params, grads, lr, momentum, weight_decay, buffers)
        del grads
        copy_tensors_([params[i] for i in held], [w[i] for i in held])
        loss, aux = valid_loss()
        out = list(torch.autograd.grad(loss, alphas + params))
        all_reduce(out)
        dalpha, v = list(out[:len(alphas)]), list(out[len(alphas):])
        del out, loss
        copy_tensors_(bn, bn_saved)
        if clip is not None:
            clip_(v, clip)
        eps = r / _norm(v)
        with torch.no_grad():
            torch._foreach_copy_(params, w)
            torch._foreach_add_(params, v, alpha=eps.item())
        loss, _ = train_loss()
        grads_p = torch.autograd.grad(loss, alphas)
        with torch.no_grad():
            torch._foreach_copy_(params, w)
            torch._foreach_add_(params, v, alpha=-eps.item())
        loss, _ = train_loss()
        grads_n = torch.autograd.grad(loss, alphas)
        terms = list(grads_p) + list(grads_n)
        all_reduce(terms)
        grads_p, grads_n = terms[:len(alphas)], terms[len(alphas):]
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, w)
    scale = lr * coef / (2 * eps)
    return [da - scale * (gp - gn) for da, gp, gn in zip(dalpha, grads_p, grads_n)], aux


def set_grads_(alphas: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    for a, g in zip(alphas, grads):
        a.grad = g.detach().to(a.dtype)

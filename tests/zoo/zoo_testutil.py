"""Test helpers of tests/zoo: files in the original DARTS checkpoint formats, written from stand-ins.

``write_legacy`` writes the legacy ``torch.save`` format as PyTorch 0.3.1 did (protocol-2
pickles: magic number, protocol version, sys info, the object with persistent ids for storages
and module classes, the sorted storage keys, then each storage as an int64 element count and
its raw bytes). Tensors are pickled as ``torch._utils._rebuild_tensor(storage, offset, size,
stride)`` over ``torch.cuda.FloatStorage`` and parameters as ``(Parameter, (data,),
(requires_grad, volatile, hooks))``, as a model saved from the GPU was. Module classes are
stand-ins that pickle under the original module paths (``model.RNNModel`` ...), so the files
need neither the original code nor a GPU.
"""
from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict, namedtuple

import torch

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
SYS_INFO = {"protocol_version": PROTOCOL, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}


class Global:
    """A reference pickled as ``GLOBAL module name``."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants reduce functions to be callable; never called here
        raise RuntimeError("a pickling stand-in")


REBUILD_TENSOR = Global("torch._utils", "_rebuild_tensor")
PARAMETER = Global("torch.nn.parameter", "Parameter")
THNN_BACKEND = Global("torch.nn.backends.thnn", "_get_thnn_function_backend")
_TYPE_NAMES = {torch.float32: "FloatStorage", torch.float64: "DoubleStorage", torch.int64: "LongStorage",
               torch.int32: "IntStorage", torch.uint8: "ByteStorage", torch.float16: "HalfStorage"}


class _Storage:
    def __init__(self, key: str, tensor: torch.Tensor, cuda: bool):
        self.key = key
        self.tensor = tensor.detach().contiguous().reshape(-1).clone()
        self.type = Global("torch.cuda" if cuda else "torch", _TYPE_NAMES[tensor.dtype])
        self.location = "cuda:0" if cuda else "cpu"


class _Backend:
    """What nn.Module._backend pickled to in PyTorch 0.3 (a call of _get_thnn_function_backend())."""


def matches_reference(model, ref, tol: float = 1e-5) -> bool:
    """Whether ``model`` gives the reference file's logits on its input, within ``tol``."""
    with torch.no_grad():
        return (model(ref["input"]) - ref["logits"]).abs().max().item() < tol


def legacy_class(module: str, name: str, is_module: bool = True) -> type:
    """A class that pickles as ``module.name`` (a stand-in for the original's classes)."""
    return type(name, (), {"_legacy_global": (module, name), "_legacy_module": is_module})


RNNModel = legacy_class("model", "RNNModel")
DARTSCell = legacy_class("model", "DARTSCell")
LockedDropout = legacy_class("utils", "LockedDropout")
Embedding = legacy_class("torch.nn.modules.sparse", "Embedding")
Linear = legacy_class("torch.nn.modules.linear", "Linear")
ModuleList = legacy_class("torch.nn.modules.container", "ModuleList")
ParameterList = legacy_class("torch.nn.modules.container", "ParameterList")
_Genotype = namedtuple("Genotype", "recurrent concat")
Genotype = type("Genotype", (_Genotype,), {"_legacy_global": ("genotypes", "Genotype"), "_legacy_module": False,
                                             "__slots__": ()})


class _LegacyPickler(pickle._Pickler):
    def __init__(self, f, cuda: bool):
        super().__init__(f, protocol=2)
        self.cuda = cuda
        self.storages = {}
        self.classes_seen = set()
        self._by_id = {}

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            self.storages[obj.key] = obj
            return ("storage", obj.type, obj.key, obj.location, obj.tensor.numel(), None)
        if isinstance(obj, type) and getattr(obj, "_legacy_module", False) and obj not in self.classes_seen:
            self.classes_seen.add(obj)
            mod, name = obj._legacy_global
            return ("module", obj, f"{mod.replace('.', '/')}.py", f"class {name}(nn.Module):\n    ...\n")
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Global) or (isinstance(obj, type) and hasattr(obj, "_legacy_global")):
            return "legacy-global"
        if isinstance(obj, torch.nn.Parameter):
            return (PARAMETER, (obj.detach(),), (obj.requires_grad, False, OrderedDict()))
        if isinstance(obj, torch.Tensor):
            key = self._by_id.get(id(obj))
            if key is None:
                key = self._by_id[id(obj)] = str(94000000 + 8 * len(self._by_id))
            storage = _Storage(key, obj, self.cuda)
            return (REBUILD_TENSOR, (storage, 0, tuple(obj.shape), tuple(obj.contiguous().stride())))
        if isinstance(obj, _Backend):
            return (THNN_BACKEND, ())
        return NotImplemented

    def save_global(self, obj, name=None):
        ref = (obj.module, obj.name) if isinstance(obj, Global) else getattr(obj, "_legacy_global", None)
        if ref is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{ref[0]}\n{ref[1]}\n".encode("utf-8"))
        self.memoize(obj)


def write_legacy(obj, path=None, cuda: bool = True) -> bytes:
    """Serialise ``obj`` in the legacy torch.save format (as PyTorch 0.3.1); write to ``path`` if given."""
    f = io.BytesIO()
    for head in (MAGIC, PROTOCOL, SYS_INFO):
        pickle.dump(head, f, protocol=2)
    p = _LegacyPickler(f, cuda)
    p.dump(obj)
    keys = sorted(p.storages)
    pickle.dump(keys, f, protocol=2)
    for key in keys:
        t = p.storages[key].tensor
        f.write(struct.pack("<q", t.numel()))
        f.write(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    data = f.getvalue()
    if path is not None:
        with open(path, "wb") as out:
            out.write(data)
    return data


def _module(cls, params=(), modules=(), **attrs):
    m = cls.__new__(cls)
    m.__dict__.update({
        "_backend": _Backend(), "_parameters": OrderedDict(params), "_buffers": OrderedDict(),
        "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(), "_forward_pre_hooks": OrderedDict(),
        "_modules": OrderedDict(modules), "training": False, **attrs,
    })
    return m


def legacy_rnn_model(state_dict, ntoken, ninp, genotype, dropout=0.75, dropouth=0.25, dropoutx=0.75,
                     dropouti=0.2, dropoute=0.1):
    """The object graph the original rnn/train.py pickled (torch.save(model)), from a state dict."""
    P = torch.nn.Parameter
    enc_w = P(state_dict["encoder.weight"].clone())
    w0 = P(state_dict["rnns.0._W0"].clone())
    ws = [P(state_dict[f"rnns.0._Ws.{i}"].clone()) for i in range(len(genotype.recurrent))]
    bias = P(state_dict["decoder.bias"].clone())
    g = Genotype(recurrent=[tuple(e) for e in genotype.recurrent], concat=range(genotype.concat[0],
                                                                                 genotype.concat[-1] + 1))
    plist = _module(ParameterList, params=[(str(i), w) for i, w in enumerate(ws)])
    cell = _module(DARTSCell, params=[("_W0", w0)], modules=[("_Ws", plist)], nhid=ninp, dropouth=dropouth,
                   dropoutx=dropoutx, genotype=g)
    encoder = _module(Embedding, params=[("weight", enc_w)], num_embeddings=ntoken, embedding_dim=ninp,
                      padding_idx=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, sparse=False)
    decoder = _module(Linear, params=[("weight", enc_w), ("bias", bias)], in_features=ninp, out_features=ntoken)
    return _module(RNNModel, modules=[("lockdrop", _module(LockedDropout)), ("encoder", encoder),
                                      ("rnns", _module(ModuleList, modules=[("0", cell)])), ("decoder", decoder)],
                   ninp=ninp, nhid=ninp, nhidlast=ninp, dropout=dropout, dropouti=dropouti, dropoute=dropoute,
                   ntoken=ntoken, cell_cls=DARTSCell)


def legacy_state_dict(state_dict):
    """A state dict as PyTorch 0.3.1 had it: no num_batches_tracked buffers."""
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked"))


class Evil:
    """Pickles as a call of os.system: a code-carrying checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))

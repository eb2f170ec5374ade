"""The evaluated conv networks of DARTS: NetworkCIFAR and NetworkImageNet.

Equal to the original (cnn/model.py) in module names, parameter shapes and arithmetic, so its
checkpoints load with ``strict=True`` and give the same outputs. One deliberate change of
interface: the original's forward always returns ``(logits, logits_aux)``; here eval mode (or a
network without auxiliary head) returns the logits tensor, and train mode with the auxiliary
head returns ``(logits, logits_aux)``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes as _genotypes
from genotypes import Genotype

from .backbone import FeatureInfo, adapt_input_conv, check_in_chans, last_module_per_stride, resolve_out_indices
from .hub_mixin import HubMixin
from .limits import check_parameters, check_sizes
from .ops import OPS, FactorizedReduce, Identity, ReLUConvBN, drop_path
from .pretrained_cfg import PretrainedCfgMixin
from .registry import register_arch
from .state import StrictLoadMixin


class Cell(nn.Module):
    """One evaluated cell: two preprocessed inputs, ``len(edges)/2`` nodes, concat output."""

    def __init__(
        self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        # After a reduction the cell two back has twice the resolution: reduce it to match.
        self.preprocess0 = FactorizedReduce(C_prev_prev, C) if reduction_prev else ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        edges = genotype.reduce if reduction else genotype.normal
        self._concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.multiplier = len(self._concat)
        self._steps = len(edges) // 2
        self._indices = [index for _, index in edges]
        # Only edges from the cell's inputs stride in a reduction cell.
        self._ops = nn.ModuleList(
            OPS[name](C, 2 if reduction and index < 2 else 1, True) for name, index in edges
        )
        self.reduction = reduction

    def forward(self, s0, s1, drop_prob=0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        # a tensor probability is never branched on (see ops.drop_path)
        apply_drop = self.training and (torch.is_tensor(drop_prob) or drop_prob > 0.0)
        for i in range(self._steps):
            op1, op2 = self._ops[2 * i], self._ops[2 * i + 1]
            h1 = op1(states[self._indices[2 * i]])
            h2 = op2(states[self._indices[2 * i + 1]])
            if apply_drop:
                if not isinstance(op1, Identity):
                    h1 = drop_path(h1, drop_prob)
                if not isinstance(op2, Identity):
                    h2 = drop_path(h2, drop_prob)
            states.append(h1 + h2)
        return torch.cat([states[i] for i in self._concat], dim=1)


def at_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """A feature map at the ``size`` x ``size`` a head was made for: unchanged at that size (the original's
    arithmetic), average-pooled from a larger one, repeated from a smaller one (images of another size)."""
    return x if tuple(x.shape[-2:]) == (size, size) else F.adaptive_avg_pool2d(x, size)


def classifier_layer(in_features: int, num_classes: int) -> nn.Module:
    """A linear classifier, or for ``num_classes=0`` (timm's convention) none: the pooled features pass through."""
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


class AuxiliaryHeadCIFAR(nn.Module):
    """Auxiliary classifier on the 8x8 feature map after the second reduction (32x32 images; other
    sizes' maps are brought to 8x8 first, :func:`at_size`)."""

    map_size = 8

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = classifier_layer(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(at_size(x, self.map_size)).flatten(1))


class AuxiliaryHeadImageNet(nn.Module):
    """Auxiliary classifier on the 7x7 map after the second reduction (224x224 images; other sizes' maps
    are brought to 7x7 first, :func:`at_size`). Like the original, without a BatchNorm after the
    768-channel conv (omitted there by a typo, kept out for equality with the paper's model).
    ``bn_after_conv2=True`` adds it, as P-DARTS's ImageNet network has it (``features.6``)."""

    map_size = 7

    def __init__(self, C: int, num_classes: int, bn_after_conv2: bool = False):
        super().__init__()
        layers = [
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if bn_after_conv2:
            layers.append(nn.BatchNorm2d(768))
        self.features = nn.Sequential(*layers, nn.ReLU(inplace=True))
        self.classifier = classifier_layer(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(at_size(x, self.map_size)).flatten(1))


def _parameter_bound(C: int, num_classes: int, layers: int) -> int:
    """An upper bound of a conv network's parameters, cheap to compute: a cell of the widest genotype (128 edges of
    7x1-1x7 convolutions) at 4*C channels, and a classifier over at most 66 concatenated nodes of 4*C."""
    return 2048 * C * C * layers + 300 * C * num_classes


class _Network(HubMixin, PretrainedCfgMixin, StrictLoadMixin, nn.Module):
    """Shared cell stack: reductions at 1/3 and 2/3 of the depth, auxiliary head after 2/3.

    ``config`` holds the constructor arguments (genotype as text), enough to rebuild the network;
    saving and model cards read it. As timm's models: ``forward_features`` gives the last cell's
    feature map, ``forward_head`` the logits from it (``pre_logits=True``: the pooled features),
    ``reset_classifier(n)`` gives fresh ``n``-way heads (the auxiliary one too; ``0`` leaves the
    pooled features as the output), ``get_classifier()`` the head, ``feature_info`` the feature maps
    (one per resolution) and ``features_only(out_indices)`` makes the network return them.
    """

    def _init_config(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype, in_chans: int,
                     drop_path_rate: float) -> Genotype:
        # num_classes=0 is timm's "no classifier": the network returns its pooled features
        sizes = {"C": C, "layers": layers, **({"num_classes": num_classes} if num_classes != 0 else {})}
        check_sizes(type(self).__name__, sizes)
        check_in_chans(type(self).__name__, in_chans)
        genotype = _genotypes.resolve(genotype, "cnn")
        self.genotype = genotype
        self.config = {"C": int(C), "num_classes": int(num_classes), "layers": int(layers),
                       "auxiliary": bool(auxiliary), "genotype": _genotypes.format(genotype)}
        # Recorded only when set, so the configs of the original's networks stay as they were.
        if in_chans != 3:
            self.config["in_chans"] = int(in_chans)
        self._auxiliary = bool(auxiliary)
        self._feature_modules = None  # names of the modules whose outputs forward returns (features_only)
        self.set_drop_path_rate(drop_path_rate)
        return genotype

    def set_drop_path_rate(self, drop_path_rate: float) -> None:
        """timm's ``drop_path_rate``: the original's ``drop_path_prob`` (training recipes may ramp it per epoch)."""
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) or not (
                0 <= drop_path_rate < 1):
            raise ValueError(f"drop_path_rate must be a probability in [0, 1), got {drop_path_rate!r}")
        self.drop_path_prob = float(drop_path_rate)
        if drop_path_rate:  # recorded only when set, like in_chans
            self.config["drop_path_rate"] = float(drop_path_rate)
        else:
            self.config.pop("drop_path_rate", None)

    @property
    def in_chans(self) -> int:
        return self.config.get("in_chans", 3)

    def _stem_conv_owner(self) -> nn.Sequential:
        raise NotImplementedError

    def set_in_chans(self, in_chans: int) -> None:
        """Make the stem read ``in_chans`` input channels, its RGB weights adapted as timm does
        (:func:`zoo.backbone.adapt_input_conv`: summed for one channel, repeated and scaled for more)."""
        check_in_chans(type(self).__name__, in_chans)
        if in_chans == self.in_chans:
            return
        owner = self._stem_conv_owner()
        old = owner[0]
        new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
                        bias=False).to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(adapt_input_conv(in_chans, old.weight.detach()))
        owner[0] = new
        if in_chans == 3:
            self.config.pop("in_chans", None)
        else:
            self.config["in_chans"] = int(in_chans)

    @property
    def num_classes(self) -> int:
        return self.config["num_classes"]

    @property
    def num_features(self) -> int:
        """Channels of the pooled features the classifier reads (timm's name)."""
        return self._cell_channels[-1]

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New, freshly initialised classifier (and auxiliary classifier) with ``num_classes`` outputs;
        ``0`` removes them, so that the network returns its pooled features (timm's convention)."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"global_pool={global_pool!r}: the DARTS networks pool by average only")
        num_classes = int(num_classes)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if self._feature_modules is not None:
            raise ValueError("a features_only network has no classifier")
        ref = next(self.parameters())
        self.classifier = classifier_layer(self.num_features, num_classes).to(ref.device, ref.dtype)
        if self._auxiliary:
            self.auxiliary_head.classifier = classifier_layer(768, num_classes).to(ref.device, ref.dtype)
        self.config["num_classes"] = num_classes

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self._global_pool(features).flatten(1)
        return pooled if pre_logits else self.classifier(pooled)

    def _global_pool(self, features: torch.Tensor) -> torch.Tensor:
        return self.global_pooling(features)

    def forward(self, x):
        keep = self._feature_modules or ()
        features, logits_aux, taken = self._forward_modules(x, keep)
        if self._feature_modules is not None:
            return taken
        logits = self.forward_head(features)
        if self._auxiliary and self.training:
            return logits, logits_aux
        return logits

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last cell's output (before global pooling), e.g. ``[B, 576, 8, 8]`` for DARTS_V2 on CIFAR-10."""
        return self._forward_modules(x, ())[0]

    # ------------------------------------------------------------------ feature maps (timm's features_only)

    def _stem_modules(self) -> List[Tuple[str, int, int]]:
        """``(name, stride, channels)`` of the stems, in forward order."""
        raise NotImplementedError

    def _all_feature_info(self) -> List[dict]:
        modules = list(self._stem_modules())
        stride = modules[-1][1]
        for i, (cell, chs) in enumerate(zip(self.cells, self._cell_channels)):
            stride *= 2 if cell.reduction else 1
            modules.append((f"cells.{i}", stride, chs))
        return last_module_per_stride(modules)

    @property
    def out_indices(self) -> Optional[Tuple[int, ...]]:
        """The feature maps ``forward`` returns (indices into ``feature_info``), or None for a classifier."""
        return self._out_indices if self._feature_modules is not None else None

    @property
    def feature_info(self) -> FeatureInfo:
        """The feature maps, one per resolution (the last module at each stride): ``channels()``, ``reduction()``."""
        info = self._all_feature_info()
        return FeatureInfo(info, self._out_indices if self._feature_modules is not None else range(len(info)))

    def features_only(self, out_indices: Optional[Sequence[int]] = None) -> "_Network":
        """Turn this network into a backbone (in place; returned): ``forward`` returns the feature maps of
        ``out_indices`` (default: all, see ``feature_info``); the classifiers, the auxiliary head and the cells
        after the last map requested are removed, as timm's ``features_only=True``."""
        if self._feature_modules is not None:
            raise ValueError("this network is features_only already")
        info = self._all_feature_info()
        self._out_indices = resolve_out_indices(out_indices, len(info))
        self._feature_modules = tuple(info[i]["module"] for i in self._out_indices)
        last = self._feature_modules[-1]
        keep_cells = int(last.split(".")[1]) + 1 if last.startswith("cells.") else 0
        self.cells = self.cells[:keep_cells]
        for name in ("classifier", "global_pooling", "auxiliary_head"):
            if hasattr(self, name):
                delattr(self, name)
        self._auxiliary = False
        return self

    def _forward_modules(self, x, keep):
        """Stems and cells: the last output, the auxiliary logits (training) and the outputs of modules ``keep``."""
        s0, s1, taken = self._stems_forward(x, keep)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_index and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
            if keep and f"cells.{i}" in keep:
                taken.append(s1)
        return s1, logits_aux, taken

    def _build_cells(self, C: int, layers: int, genotype: Genotype, C_stem: int, reduction_prev: bool) -> int:
        C_prev_prev, C_prev, C_curr = C_stem, C_stem, C
        self.cells = nn.ModuleList()
        self._aux_index = 2 * layers // 3
        C_aux = None
        self._cell_channels = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            self._cell_channels.append(C_prev)
            if i == self._aux_index:
                C_aux = C_prev
        self._C_aux = C_aux
        return C_prev

    def extra_repr(self) -> str:
        return f"genotype={_genotypes.format(self.genotype)}"


@register_arch
class NetworkCIFAR(_Network):
    """DARTS evaluation network for 32x32 images (C=36, 20 cells in the paper)."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Union[Genotype, str],
                 in_chans: int = 3, drop_path_rate: float = 0.0):
        super().__init__()
        genotype = self._init_config(C, num_classes, layers, auxiliary, genotype, in_chans, drop_path_rate)
        check_parameters("NetworkCIFAR", _parameter_bound(C, num_classes, layers),
                         lambda: NetworkCIFAR(C, num_classes, layers, auxiliary, genotype, in_chans))
        stem_multiplier = 3
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_chans, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        C_prev = self._build_cells(C, layers, genotype, C_stem, reduction_prev=False)
        if self._auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(self._C_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier_layer(C_prev, num_classes)

    def _stem_conv_owner(self) -> nn.Sequential:
        return self.stem

    def _stem_modules(self):
        return [("stem", 1, self.stem[0].out_channels)]

    def _stems_forward(self, x, keep):
        s = self.stem(x)
        return s, s, [s] if "stem" in keep else []


def imagenet_stems(in_chans: int, C: int):
    """ImageNet's stems: stem0 two stride-2 3x3 convs to C channels, stem1 a third (the search's supernet
    takes them too for large images)."""
    stem0 = nn.Sequential(
        nn.Conv2d(in_chans, C // 2, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    stem1 = nn.Sequential(
        nn.ReLU(inplace=True),
        nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    return stem0, stem1


@register_arch
class NetworkImageNet(_Network):
    """DARTS evaluation network for 224x224 images (C=48, 14 cells in the paper)."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: Union[Genotype, str],
                 auxiliary_bn: bool = False, in_chans: int = 3, drop_path_rate: float = 0.0):
        super().__init__()
        genotype = self._init_config(C, num_classes, layers, auxiliary, genotype, in_chans, drop_path_rate)
        check_parameters("NetworkImageNet", _parameter_bound(C, num_classes, layers),
                         lambda: NetworkImageNet(C, num_classes, layers, auxiliary, genotype, auxiliary_bn, in_chans))
        if auxiliary_bn:  # only recorded when set, so configs of the original's network stay as they were
            self.config["auxiliary_bn"] = True
        self.stem0, self.stem1 = imagenet_stems(in_chans, C)
        # The stems already reduced twice, so the first cell's s0 input is treated as reduced.
        C_prev = self._build_cells(C, layers, genotype, C, reduction_prev=True)
        if self._auxiliary:
            self.auxiliary_head = AuxiliaryHeadImageNet(self._C_aux, num_classes, bn_after_conv2=auxiliary_bn)
        # A fixed 7x7 average, as in the original: the network expects 224x224 inputs.
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = classifier_layer(C_prev, num_classes)

    def _global_pool(self, features: torch.Tensor) -> torch.Tensor:
        # the original's fixed 7x7 average at 224x224 inputs; the mean over the whole map at other sizes
        square7 = tuple(features.shape[-2:]) == (7, 7)
        return self.global_pooling(features) if square7 else F.adaptive_avg_pool2d(features, 1)

    def _stem_conv_owner(self) -> nn.Sequential:
        return self.stem0

    def _stem_modules(self):
        return [("stem0", 4, self.stem0[3].out_channels), ("stem1", 8, self.stem1[1].out_channels)]

    def _stems_forward(self, x, keep):
        s0 = self.stem0(x)
        # stem1 starts with an in-place ReLU (as the original): a kept stem0 map is copied before it runs
        taken = [s0.clone()] if "stem0" in keep else []
        s1 = self.stem1(s0)
        if "stem1" in keep:
            taken.append(s1)
        return s0, s1, taken

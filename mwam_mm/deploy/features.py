"""The dual-stream backbone's inference pass with a presence input, as a graph.

:meth:`mwam_mm.models.DualStreamBackbone.forward` decides in Python whether a
batch has a missing modality (``presence`` is ``None`` when none is), so a traced
graph would keep only the case seen at export. Here the presence mask is always
a tensor and every branch is a tensor operation: a present modality keeps its
features exactly (``torch.where``), a missing one gets the substitute's zeros,
and the fusion modules always see the mask (an all-True mask is a no-op for
them, by their contract).
"""
from typing import List, Optional

import torch
import torch.nn as nn

from ..models import DualStreamBackbone, ZeroSubstitute


class ExportError(RuntimeError):
    """A model that cannot be exported, with the module and what to do."""


def check_exportable_backbone(backbone: nn.Module, with_presence: bool) -> None:
    """Refuse, naming the module, what the graph below cannot express."""
    if not isinstance(backbone, DualStreamBackbone):
        raise ExportError(
            f'the model\'s backbone is {type(backbone).__name__}; the RGB-T export '
            'needs a DualStreamBackbone (one stream per modality)')
    substitute = backbone.missing_substitute
    if not with_presence:
        if backbone.ignored and type(substitute) is not ZeroSubstitute:
            raise ExportError(
                f'backbone.missing_substitute is {type(substitute).__name__} and the '
                f'model ignores {backbone.ignored}: the graph without a presence '
                'input cannot run the proxy for the ignored modality')
        return
    if type(substitute) is not ZeroSubstitute:
        raise ExportError(
            f'backbone.missing_substitute is {type(substitute).__name__}; with a '
            'presence input the graph supports ZeroSubstitute only (a learned '
            'proxy selects samples in Python). Export without the presence input '
            '(--no-presence): a missing camera is then given as a blank image')
    for index, takes in enumerate(backbone._fusion_takes_presence):
        if not takes:
            fusion = backbone.fusions[index]
            raise ExportError(
                f'backbone.fusions.{index} ({type(fusion).__name__}) has no '
                '`presence` argument in its forward, so a graph with a presence '
                'input cannot pass it the mask; add `presence=None` to its forward '
                'or export with --no-presence')


class RGBTGraph(nn.Module):
    """What every export module shares: the model, whether the graph takes a
    ``presence`` input, and the features after the neck (:func:`fused_features`).

    Args:
        model: The RGB-T detector or segmentor (eval mode).
        with_presence (bool): Take a ``presence`` input.
    """

    def __init__(self, model: nn.Module, with_presence: bool = True):
        super().__init__()
        check_exportable_backbone(model.backbone, with_presence)
        self.model = model
        self.with_presence = with_presence

    def presence_input(self) -> List[str]:
        return ['presence'] if self.with_presence else []

    def features(self,
                 image: torch.Tensor,
                 presence: Optional[torch.Tensor] = None) -> tuple:
        """The backbone's fused levels, through the neck when there is one."""
        feats = fused_features(self.model.backbone, image, presence)
        return self.model.neck(feats) if self.model.with_neck else feats


def presence_with_ignored(backbone: DualStreamBackbone,
                          presence: torch.Tensor) -> torch.Tensor:
    """``presence`` with the modalities the model ignores marked missing."""
    if not backbone.ignored:
        return presence
    used = torch.tensor([name in backbone.used for name in backbone.layout.names],
                        dtype=torch.bool,
                        device=presence.device)
    return presence & used.view(1, -1)


def fused_features(backbone: DualStreamBackbone,
                   x: torch.Tensor,
                   presence: Optional[torch.Tensor] = None) -> tuple:
    """The backbone's fused output levels for ``x`` (``(B, C, H, W)``, normalised,
    channels in layout order) and a ``(B, M)`` bool ``presence`` (None: every
    modality the model uses is present), without data-dependent Python branches.

    Equal to ``backbone(x, presence)`` in eval mode (tested).
    """
    streams = backbone.forward_streams(x)
    if presence is None:
        if not backbone.ignored:
            levels = zip(*(streams[m.name] for m in backbone.layout))
            return tuple(fuse(list(f)) for fuse, f in zip(backbone.fusions, levels))
        presence = torch.ones(
            x.shape[0], len(backbone.layout), dtype=torch.bool, device=x.device)
    presence = presence_with_ignored(backbone, presence.to(torch.bool))
    kept = {}
    for index, name in enumerate(backbone.layout.names):
        keep = presence[:, index]
        kept[name] = tuple(
            torch.where(
                keep.view(-1, *([1] *
                                (level.dim() - 1))), level, torch.zeros_like(level))
            for level in streams[name])
    levels = zip(*(kept[m.name] for m in backbone.layout))
    return tuple(
        fuse(list(f), presence=presence) for fuse, f in zip(backbone.fusions, levels))

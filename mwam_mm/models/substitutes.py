"""What stands in for the features of a modality known to be missing.

:class:`~mwam_mm.models.DualStreamBackbone` calls its substitute with every stream's
outputs and the batch's presence mask, and uses the returned features for the
samples whose modality is missing (the stream's own output for the others). A
substitute is any registered module with that interface, so a learned proxy that
predicts a modality's features from the others can stand in for the zeros.

A substitute sets ``predicts_features = True`` when its output is a prediction
of the missing features rather than a placeholder: the backbone then fuses it
like real features (no presence mask for the fusion modules).
"""
from typing import Dict, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS

Levels = Tuple[torch.Tensor, ...]


@MODELS.register_module()
class ZeroSubstitute(BaseModule):
    """Zeros: a missing modality contributes nothing (the authors' release
    multiplies the missing encoder's output by 0)."""

    predicts_features = False

    def forward(self, outs: Dict[str, Levels],
                presence: torch.Tensor) -> Dict[str, Levels]:
        """Substitute features for every modality missing in some sample.

        Args:
            outs (dict[str, tuple[Tensor]]): Each modality's stream outputs, one
                ``(B, C, H, W)`` tensor per level.
            presence (Tensor): ``(B, M)`` bool, True where present, modalities in
                layout order (the order of ``outs``).

        Returns:
            dict[str, tuple[Tensor]]: For the modalities missing somewhere, one
            tensor per level, shaped as the stream's.
        """
        missing = (~presence).any(dim=0).tolist()
        return {
            name: tuple(torch.zeros_like(level) for level in levels)
            for (name, levels), absent in zip(outs.items(), missing) if absent
        }

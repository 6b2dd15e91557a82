"""Fusion modules: one feature map per modality in, one fused map out.

Every fusion module is built per output level with ``channels`` (the level's channel
count, the same for every stream) and ``num_modalities``, and is called with a list of
``(B, channels, H, W)`` tensors in layout order. When some samples have a modality
known to be missing, it is also given ``presence``, a ``(B, num_modalities)`` bool
tensor (True where present); the missing features have already been replaced by the
backbone's substitute (zeros by default).
"""
from typing import List, Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.registry import MODELS


@MODELS.register_module()
class AddFusion(BaseModule):
    """Element-wise sum of the modalities' features (no parameters).

    Args:
        channels (int): Channels of each input (unused; for a uniform interface).
        num_modalities (int): Number of inputs.
    """

    def __init__(self, channels: int, num_modalities: int, init_cfg=None):
        super().__init__(init_cfg)
        self.num_modalities = num_modalities

    def forward(self,
                feats: List[torch.Tensor],
                presence: Optional[torch.Tensor] = None) -> torch.Tensor:
        # a missing modality's substitute (zeros) adds nothing: no mask needed
        out = feats[0]
        for f in feats[1:]:
            out = out + f
        return out


@MODELS.register_module()
class ConcatConvFusion(BaseModule):
    """Concatenation followed by a 1x1 conv (+ norm + act) back to ``channels``.

    Args:
        channels (int): Channels of each input and of the output.
        num_modalities (int): Number of inputs.
        norm_cfg (dict): Norm layer. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation. Defaults to ``dict(type='ReLU')``.
    """

    def __init__(self,
                 channels: int,
                 num_modalities: int,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg=None):
        super().__init__(init_cfg)
        self.conv = ConvModule(
            channels * num_modalities, channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self,
                feats: List[torch.Tensor],
                presence: Optional[torch.Tensor] = None) -> torch.Tensor:
        # the substitute's features go through the missing modality's weight slice
        return self.conv(torch.cat(feats, dim=1))


@MODELS.register_module()
class GatedFusion(BaseModule):
    """Attention-style gate: per-pixel softmax weights over the modalities.

    A 1x1 conv on the concatenated features predicts one logit map per modality;
    the output is the softmax-weighted sum of the inputs, so the gate can lean on
    whichever modality is informative at each location (and ignore a blank one).
    With a presence mask, a missing modality's weight is exactly 0 for that sample,
    so the output is the present modalities' features alone.

    Args:
        channels (int): Channels of each input and of the output.
        num_modalities (int): Number of inputs.
        hidden_ratio (int): The gate's hidden width is ``channels // hidden_ratio``.
    """

    def __init__(self,
                 channels: int,
                 num_modalities: int,
                 hidden_ratio: int = 4,
                 init_cfg=None):
        super().__init__(init_cfg)
        hidden = max(channels // hidden_ratio, 8)
        self.gate = nn.Sequential(
            nn.Conv2d(channels * num_modalities, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_modalities, 1),
        )

    def forward(self,
                feats: List[torch.Tensor],
                presence: Optional[torch.Tensor] = None) -> torch.Tensor:
        logits = self.gate(torch.cat(feats, dim=1))
        if presence is not None:
            absent = ~presence.view(*presence.shape, 1, 1)
            logits = logits.masked_fill(absent, float('-inf'))
        weights = logits.softmax(dim=1)
        stacked = torch.stack(feats, dim=1)  # (B, M, C, H, W)
        return (stacked * weights.unsqueeze(2)).sum(dim=1)

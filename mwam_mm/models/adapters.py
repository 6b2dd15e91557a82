"""Low-rank adapters on (frozen) streams, as CMPT trains over frozen encoders.

:class:`~mwam_mm.models.DualStreamBackbone` builds one adapter per used modality
with ``stream_adapter=dict(type='LowRankAdapter', rank=1)`` (passing the output
channels per level) and applies it to that stream's output levels; with
``freeze_streams=True`` the streams keep their (pretrained) weights and only the
adapters, the fusion and the heads learn.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS


@MODELS.register_module()
class LowRankAdapter(BaseModule):
    """A residual low-rank 1x1 bottleneck per feature level: ``f + up(down(f))``.

    ``down`` maps a level's ``C`` channels to ``rank``, ``up`` maps them back;
    both are 1x1 convolutions without bias, so a level costs ``2 * C * rank``
    parameters. ``up`` starts at zero, so the adapter starts as the identity (the
    frozen stream's features pass unchanged) and learns a correction from there;
    ``init_weights`` zeroes it again after any ``init_cfg`` of a parent module
    (e.g. a Kaiming init of every ``Conv2d`` of the backbone) has run.

    Args:
        channels (Sequence[int]): Channels of each level (the backbone passes its
            ``out_channels``).
        rank (int): Width of the bottleneck. Defaults to 1 (CMPT reports rank 1
            to suffice).
        init_cfg (dict, optional): Initialisation of ``down``; ``up`` is always
            zero at the start.
    """

    def __init__(self,
                 channels: Sequence[int],
                 rank: int = 1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if isinstance(channels, int) or not channels or not all(
                isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(
                'LowRankAdapter: channels must be a non-empty list of positive '
                f'channel counts, one per level; got {channels!r}')
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f'LowRankAdapter: rank must be a positive integer, got '
                             f'{rank!r}')
        self.channels = list(channels)
        self.rank = rank
        self.down = nn.ModuleList(
            [nn.Conv2d(c, rank, 1, bias=False) for c in self.channels])
        self.up = nn.ModuleList(
            [nn.Conv2d(rank, c, 1, bias=False) for c in self.channels])
        self._zero_up()

    def _zero_up(self) -> None:
        for conv in self.up:
            nn.init.zeros_(conv.weight)

    def init_weights(self) -> None:
        super().init_weights()
        # a parent's init_cfg (applied to all its Conv2d before this call) must
        # not break the identity start
        self._zero_up()

    def forward(self, levels: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Adapt each level.

        Args:
            levels (Sequence[Tensor]): One ``(B, C_l, H_l, W_l)`` tensor per level.

        Returns:
            tuple[Tensor]: ``f + up(down(f))`` per level.
        """
        if len(levels) != len(self.channels):
            raise ValueError(
                f'LowRankAdapter: got {len(levels)} feature levels, built for '
                f'{len(self.channels)} (channels {self.channels}); build it with the '
                "stream's output channels per level")
        adapted = []
        for index, (f, down, up) in enumerate(zip(levels, self.down, self.up)):
            if f.shape[1] != self.channels[index]:
                raise ValueError(
                    f'LowRankAdapter: level {index} has {f.shape[1]} channels, '
                    f'built for {self.channels[index]} (channels {self.channels})')
            adapted.append(f + up(down(f)))
        return tuple(adapted)

"""Segmentation graphs: an RGB-T segmentor's whole-image inference.

Inputs: the preprocessed batch ``image`` (normalised, channels in layout order,
padded as the config's data preprocessor does) and, optionally, ``presence``.
Outputs: ``seg_map`` ``(B, H, W)`` int64, the class per pixel of the padded
input, and with ``with_logits`` also ``seg_logits`` ``(B, C, H, W)``: the decode
head's logits resized to the input (mmseg's ``encode_decode``). Removing the
padding and resizing to the original image (mmseg's ``postprocess_result``) is
left to the caller: it depends on each image's size.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import CascadeEncoderDecoder, EncoderDecoder

from .features import ExportError, RGBTGraph


class SegmentationGraph(RGBTGraph):
    """An RGB-T encoder-decoder segmentor as a graph.

    Args:
        model (EncoderDecoder): The segmentor (eval mode), ``test_cfg.mode``
            ``'whole'``.
        with_presence (bool): Take a ``presence`` input.
        with_logits (bool): Also return ``seg_logits``.
    """

    def __init__(self,
                 model: EncoderDecoder,
                 with_presence: bool = True,
                 with_logits: bool = False):
        if not isinstance(model, EncoderDecoder) or \
                isinstance(model, CascadeEncoderDecoder):
            raise ExportError(f'{type(model).__name__} is not an mmseg '
                              'EncoderDecoder (one decode head); the segmentation '
                              'export needs one')
        head = model.decode_head
        if type(head).predict_by_feat is not BaseDecodeHead.predict_by_feat:
            raise ExportError(
                f'decode_head is {type(head).__name__}, whose predict_by_feat is '
                "its own; the export reproduces mmseg's (resize to the input)")
        super().__init__(model, with_presence)
        mode = (model.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ExportError(
                f"the segmentor's test_cfg.mode is {mode!r}; the export runs the "
                "whole image at once: set model.test_cfg=dict(mode='whole') "
                '(--cfg-options) and give --shape the size to export')
        self.with_logits = with_logits

    @property
    def input_names(self) -> List[str]:
        return ['image'] + self.presence_input()

    @property
    def output_names(self) -> List[str]:
        return ['seg_map'] + (['seg_logits'] if self.with_logits else [])

    def forward(self, image: torch.Tensor, presence: Optional[torch.Tensor] = None):
        head = self.model.decode_head
        logits = F.interpolate(
            head.forward(self.features(image, presence)),
            size=image.shape[-2:],
            mode='bilinear',
            align_corners=head.align_corners)
        if logits.shape[1] > 1:
            seg_map = logits.argmax(dim=1)
        else:
            seg_map = (logits.sigmoid() > head.threshold).squeeze(1).long()
        return (seg_map, logits) if self.with_logits else (seg_map, )

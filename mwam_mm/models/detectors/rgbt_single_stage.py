"""Single-stage detector with auxiliary per-modality heads."""
import copy
from typing import Optional

from mmdet.models.detectors import SingleStageDetector
from mmengine.model import ModuleDict
from mmengine.registry import MODELS


@MODELS.register_module()
class RGBTSingleStageDetector(SingleStageDetector):
    """A single-stage detector (RetinaNet, FCOS, ...) on a dual-stream backbone,
    optionally with one auxiliary head per modality.

    With ``aux_loss_weight > 0``, training computes the streams once, the fused
    features give the detector's usual losses, and each modality's own features go
    through the shared neck into an auxiliary copy of ``bbox_head``; its losses are
    reported with the modality as suffix (``loss_cls_rgb``, ``loss_bbox_thermal``),
    scaled by ``aux_loss_weight``. That is the naming contract of
    :class:`mwam_mm.engine.MWAMHook`'s ``'loss'`` and ``'hybrid'`` modes, and the
    per-modality signal RSC-MD- and OGM-GE-style methods need. Inference uses the
    fused path only: the auxiliary heads cost nothing at test time. The auxiliary
    heads see each stream's own features, also for samples where the fused path
    replaces them as missing.

    Args:
        aux_loss_weight (float): Weight of the auxiliary losses; 0 (default) builds
            no auxiliary heads and the detector is the plain one.
        **kwargs: Arguments of ``SingleStageDetector`` (``backbone``, ``neck``,
            ``bbox_head``, ``train_cfg``, ``test_cfg``, ``data_preprocessor``).
    """

    def __init__(self,
                 *args,
                 aux_loss_weight: float = 0.0,
                 bbox_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(
            *args,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            **kwargs)
        self.aux_loss_weight = float(aux_loss_weight)
        self.aux_heads = None
        if self.aux_loss_weight > 0:
            if not hasattr(self.backbone, 'forward_streams'):
                raise TypeError(
                    'RGBTSingleStageDetector: auxiliary heads need a backbone with '
                    'forward_streams() and fuse(), such as DualStreamBackbone; got '
                    f'{type(self.backbone).__name__}')
            head = copy.deepcopy(bbox_head)
            head.update(train_cfg=train_cfg, test_cfg=test_cfg)
            self.aux_heads = ModuleDict({
                name: MODELS.build(copy.deepcopy(head))
                for name in self.backbone.layout.names
            })

    def loss(self, batch_inputs, batch_data_samples) -> dict:
        if self.aux_heads is None:
            return super().loss(batch_inputs, batch_data_samples)
        backbone = self.backbone
        presence = backbone.resolve_presence(None, batch_inputs.shape[0],
                                             batch_inputs.device)
        streams = backbone.forward_streams(batch_inputs)
        fused = backbone.fuse(backbone.replace_missing(streams, presence), presence)
        neck = self.neck if self.with_neck else (lambda feats: feats)
        losses = self.bbox_head.loss(neck(fused), batch_data_samples)
        for name, feats in streams.items():
            aux = self.aux_heads[name].loss(neck(feats), batch_data_samples)
            for key, value in aux.items():
                if 'loss' in key:
                    value = ([v * self.aux_loss_weight
                              for v in value] if isinstance(value,
                                                            (list, tuple)) else value *
                             self.aux_loss_weight)
                losses[f'{key}_{name}'] = value
        return losses

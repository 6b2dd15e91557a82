"""mmseg's EncoderDecoder with per-modality outputs and auxiliary decode heads."""
import contextlib
import copy
import logging
import math
import numbers
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import ModuleDict
from mmengine.registry import MODELS
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS as SEG_MODELS

from ...registry_utils import build_from_registry
from ..modality_outputs import ModalityOutputsMixin, check_source

SHARING = ('separate', 'shared')


@contextlib.contextmanager
def _inference_mode(module: nn.Module):
    """``module`` in eval mode for the block; every submodule's own flag restored
    afterwards (some were in eval mode already: frozen streams, ``norm_eval``)."""
    modes = [(m, m.training) for m in module.modules()]
    module.train(False)
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@MODELS.register_module()
class RGBTEncoderDecoder(ModalityOutputsMixin, EncoderDecoder):
    """mmseg's ``EncoderDecoder`` for RGB-T: per-modality outputs and RSC's
    auxiliary per-modality decode heads.

    With the default arguments it is mmseg's ``EncoderDecoder`` exactly (same
    losses, same predictions), plus the losses the backbone's own modules computed
    (:meth:`DualStreamBackbone.pop_extra_losses`, e.g. a learned substitute's
    alignment loss), which every training :meth:`loss` adds.

    **Auxiliary per-modality heads (RSC).** With ``aux_loss_weight > 0`` the
    backbone's streams run once; the fused features give mmseg's usual losses
    (``decode.*`` and, with an ``auxiliary_head``, ``aux.*``), and each modality's
    own stream outputs (after its ``stream_adapter``, before any fusion, missing
    substitute, ``sample_weights`` or ``fused_grad_scale``) go through the neck,
    if any, into that modality's auxiliary decode head. Its losses are reported as
    ``aux.<key>_<modality>`` (``aux.loss_ce_rgb``, ``aux.acc_seg_thermal``), the
    ``loss`` ones multiplied by ``aux_loss_weight``: the ``_<modality>`` suffix is
    what :class:`mwam_mm.engine.MWAMHook`'s ``'loss'`` mode looks for. Modality
    decoupling (RSC-MD's MD) is the backbone's ``fused_grad_scale``: at 0 the
    streams learn from their auxiliary losses alone. The auxiliary heads are never
    used by :meth:`predict` or ``_forward``: no cost at test time. Heads see each
    stream's own features also for samples whose modality the fused path replaces
    as missing. Only the modalities the backbone uses get heads (none for its
    ``ignore_modalities``).

    **Per-modality outputs** (:class:`~mwam_mm.models.ModalityOutputsMixin`):
    while ``modality_scores_source`` is ``'aux'`` or ``'view'``, :meth:`loss`
    also returns, per used modality ``m``, the detached 0-dim tensors
    ``modality_score_<m>`` (the sum over the labelled pixels, label !=
    ``decode_head.ignore_index``, of modality ``m``'s unimodal probability of the
    ground-truth class, the logits resized to the label size as mmseg's loss does)
    and ``modality_count_<m>`` (the number of those pixels, float). ``'aux'``:
    the auxiliary head's own training logits. ``'view'``: the shared decode head,
    under ``no_grad`` and in eval mode (running statistics, no dropout, no
    training-hook weights: the prediction the model makes at test time when only
    ``m`` is present), applied to the unimodal view
    ``backbone.fuse(backbone.replace_missing(streams, only_m), only_m)`` of this
    forward's stream outputs. :meth:`modality_predictions` gives per-image class
    probabilities on labelled pixels for BTW.

    Args:
        backbone (dict): Backbone config; auxiliary heads and the ``'view'``
            source need a :class:`~mwam_mm.models.DualStreamBackbone` (or one with
            its ``forward_streams``, ``resolve_presence``, ``replace_missing``,
            ``fuse`` and ``layout``).
        decode_head (dict): The (fused) decode head, as in mmseg.
        neck (dict, optional): As in mmseg; also applied to each stream's
            features before its auxiliary head.
        auxiliary_head (dict | list[dict], optional): mmseg's own auxiliary
            head(s) on the fused features (e.g. FCN on a middle level); unchanged.
        train_cfg (dict, optional): As in mmseg.
        test_cfg (dict, optional): As in mmseg.
        data_preprocessor (dict, optional): As in mmseg.
        pretrained (str, optional): As in mmseg.
        init_cfg (dict, optional): As in mmseg.
        modality_aux_head (dict, optional): Decode-head config of the auxiliary
            per-modality heads, built once per modality (``modality_aux_heads=
            'separate'``). Defaults to ``None``: a copy of ``decode_head``'s
            config. It must predict the same ``num_classes``, and its ``loss``
            must be mmseg's ``forward`` + ``loss_by_feat`` (every
            ``BaseDecodeHead`` that does not override ``loss``).
        modality_aux_heads (str): ``'separate'`` (default): one new head per
            modality; ``'shared'``: the main ``decode_head`` itself is applied to
            each stream's own features (no extra parameters; its weights learn
            from the fused and the unimodal losses).
        aux_loss_weight (float): lambda, the weight of the auxiliary losses.
            Defaults to 0: no auxiliary heads, the plain model.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: Optional[dict] = None,
                 auxiliary_head=None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg=None,
                 modality_aux_head: Optional[dict] = None,
                 modality_aux_heads: str = 'separate',
                 aux_loss_weight: float = 0.0):
        weight = self._check_arguments(modality_aux_head, modality_aux_heads,
                                       aux_loss_weight)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.aux_loss_weight = weight
        self.modality_aux_heads = modality_aux_heads
        self.modality_aux_head: Optional[ModuleDict] = None
        if weight == 0:
            if modality_aux_head is not None or modality_aux_heads != 'separate':
                # an ablation that sets only the weight to 0 stays valid
                print_log(
                    'RGBTEncoderDecoder: aux_loss_weight=0, so no auxiliary '
                    'per-modality heads are built; modality_aux_head / '
                    f'modality_aux_heads={modality_aux_heads!r} are ignored',
                    logger='current',
                    level=logging.WARNING)
            return
        self._check_dual_stream('auxiliary per-modality heads (aux_loss_weight > 0)')
        if modality_aux_heads == 'shared':
            self._check_head(self.decode_head, 'decode_head (shared)')
            return
        if modality_aux_head is None:
            print_log(
                'RGBTEncoderDecoder: modality_aux_head is not given; each modality '
                "gets a copy of decode_head's config "
                f"({decode_head.get('type')})",
                logger='current',
                level=logging.INFO)
            modality_aux_head = decode_head
        self.modality_aux_head = ModuleDict({
            name:
            build_from_registry(SEG_MODELS, copy.deepcopy(modality_aux_head))
            for name in self.modality_names
        })
        for name, head in self.modality_aux_head.items():
            self._check_head(head, f'modality_aux_head ({name})')

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_arguments(head, sharing, weight) -> float:
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) \
                or not math.isfinite(weight) or weight < 0:
            raise ValueError(
                f'RGBTEncoderDecoder: aux_loss_weight={weight!r}; expected a '
                'finite number >= 0 (lambda of the auxiliary per-modality losses; '
                '0 = no auxiliary heads)')
        if sharing not in SHARING:
            raise ValueError(
                f'RGBTEncoderDecoder: modality_aux_heads={sharing!r}; expected '
                "'separate' (one head per modality, built from modality_aux_head) "
                "or 'shared' (the main decode_head on each stream's features)")
        if head is not None and not isinstance(head, dict):
            raise TypeError(
                'RGBTEncoderDecoder: modality_aux_head must be a decode-head '
                f'config dict (or None for a copy of decode_head), got '
                f'{type(head).__name__}')
        if head is not None and sharing == 'shared':
            raise ValueError(
                "RGBTEncoderDecoder: modality_aux_heads='shared' reuses the main "
                'decode_head, so modality_aux_head must be None; give '
                "modality_aux_heads='separate' to build heads from "
                'modality_aux_head')
        return float(weight)

    def _check_dual_stream(self, what: str) -> None:
        needed = ('forward_streams', 'resolve_presence', 'replace_missing', 'fuse',
                  'layout')
        lacking = [n for n in needed if not hasattr(self.backbone, n)]
        if lacking:
            raise TypeError(
                f'RGBTEncoderDecoder: {what} need a backbone with one stream per '
                f'modality, such as DualStreamBackbone; '
                f'{type(self.backbone).__name__} has no {", ".join(lacking)}')

    def _check_head(self, head: nn.Module, what: str) -> None:
        if not isinstance(head, BaseDecodeHead):
            raise TypeError(
                f'RGBTEncoderDecoder: {what} is a {type(head).__name__}; the '
                "per-modality heads need an mmseg BaseDecodeHead")
        if type(head).loss is not BaseDecodeHead.loss:
            # the unimodal scores reuse the logits of forward(): only a head whose
            # loss is forward + loss_by_feat gives them without a second pass
            raise TypeError(
                f'RGBTEncoderDecoder: {what} ({type(head).__name__}) overrides '
                'loss(); per-modality heads need a head whose loss is forward() + '
                'loss_by_feat() (FCNHead, ASPPHead, DepthwiseSeparableASPPHead, '
                'SegformerHead, UPerHead, ...); set modality_aux_head to one')
        if head.num_classes != self.num_classes:
            raise ValueError(
                f'RGBTEncoderDecoder: {what} has num_classes={head.num_classes}, '
                f'decode_head has {self.num_classes}; set the same num_classes')

    # ---------------------------------------------------------------- contract
    def has_modality_heads(self) -> bool:
        """Whether auxiliary per-modality heads exist (``aux_loss_weight > 0``)."""
        return self.aux_loss_weight > 0

    def _aux_head(self, name: str) -> BaseDecodeHead:
        if self.modality_aux_heads == 'shared':
            return self.decode_head
        return self.modality_aux_head[name]

    def _labels(self, data_samples, owner: str) -> torch.Tensor:
        """``(B, H, W)`` ground truth, checked against the classes."""
        try:
            labels = torch.stack([s.gt_sem_seg.data for s in data_samples])
        except AttributeError:
            raise ValueError(
                f'RGBTEncoderDecoder.{owner} needs the data samples\' ground truth '
                '(gt_sem_seg) to pick the labelled pixels; keep the annotation '
                'loading step in the pipeline') from None
        labels = labels.squeeze(1).long()
        ignore = self.decode_head.ignore_index
        bad = labels[(labels != ignore) & ((labels < 0) | (labels >= self.num_classes))]
        if bad.numel():
            raise ValueError(
                f'RGBTEncoderDecoder.{owner}: label value(s) '
                f'{sorted(set(bad.unique().tolist()))[:10]} are neither a class '
                f'(0..{self.num_classes - 1}) nor ignore_index {ignore}')
        return labels

    @staticmethod
    def _probabilities(logits: torch.Tensor, size, align_corners) -> torch.Tensor:
        """Class probabilities at ``size``, resized as mmseg's loss_by_feat does."""
        logits = resize(
            input=logits.float(),
            size=size,
            mode='bilinear',
            align_corners=align_corners)
        if logits.shape[1] == 1:  # a sigmoid head (binary): two columns
            fg = logits.sigmoid()
            return torch.cat([1 - fg, fg], dim=1)
        return logits.softmax(dim=1)

    def _score(self, logits: torch.Tensor, labels: torch.Tensor,
               align_corners) -> Tuple[torch.Tensor, torch.Tensor]:
        probs = self._probabilities(logits.detach(), labels.shape[-2:], align_corners)
        valid = labels != self.decode_head.ignore_index
        index = labels.masked_fill(~valid, 0).unsqueeze(1)
        truth = probs.gather(1, index).squeeze(1)
        count = valid.sum().to(probs.dtype)
        return truth[valid].sum().detach(), count

    def _view_logits(self, streams: Dict[str, tuple], name: str) -> torch.Tensor:
        """The shared decode head on modality ``name``'s unimodal view (call it
        under ``no_grad`` and :func:`_inference_mode`)."""
        return self.decode_head(self._neck(self._unimodal_fused(streams, name)))

    def _source(self, source: Optional[str], owner: str) -> Optional[str]:
        if source is None:
            return None
        source = check_source(source, self, f'RGBTEncoderDecoder.{owner}')
        if source == 'view':
            self._check_dual_stream("the 'view' source's unimodal views")
        return source

    # ------------------------------------------------------------------ losses
    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        """Losses of a batch: mmseg's, the backbone's extra ones, and, when
        configured, the auxiliary per-modality losses and unimodal scores.

        Args:
            inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
            data_samples (list[SegDataSample]): Its samples, with ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: The losses and logged values.
        """
        source = self._source(self.modality_scores_source, 'modality_scores_source')
        if not self.has_modality_heads() and source is None:
            # exactly mmseg's path (the backbone forward resolves the presence)
            losses = super().loss(inputs, data_samples)
            return self._add_extra_losses(losses, self._pop_extra_losses())
        backbone = self.backbone
        # what backbone(inputs) does, keeping the streams' own outputs
        presence = backbone.resolve_presence(None, inputs.shape[0], inputs.device)
        streams = backbone.forward_streams(inputs)
        fused = backbone.fuse(
            backbone.replace_missing(streams, presence, with_losses=True), presence)
        extra = self._pop_extra_losses()
        x = self._neck(fused)
        losses = self._decode_head_forward_train(x, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))

        aux_logits = {}
        if self.has_modality_heads():
            for name in self.modality_names:
                head = self._aux_head(name)
                # forward + loss_by_feat is the head's loss(), logits kept
                aux_logits[name] = head(self._neck(streams[name]))
                head_losses = head.loss_by_feat(aux_logits[name], data_samples)
                for key, value in head_losses.items():
                    if 'loss' in key:
                        value = ([v * self.aux_loss_weight
                                  for v in value] if isinstance(value,
                                                                (list,
                                                                 tuple)) else value *
                                 self.aux_loss_weight)
                    losses[f'aux.{key}_{name}'] = value

        if source is not None:
            labels = self._labels(data_samples, 'loss')
            for name in self.modality_names:
                if source == 'aux':
                    logits = aux_logits[name]
                    align = self._aux_head(name).align_corners
                else:
                    with torch.no_grad(), _inference_mode(self):
                        logits = self._view_logits(streams, name)
                    align = self.decode_head.align_corners
                score, count = self._score(logits, labels, align)
                losses[f'modality_score_{name}'] = score
                losses[f'modality_count_{name}'] = count
        return self._add_extra_losses(losses, extra)

    # ------------------------------------------------------------- predictions
    @torch.no_grad()
    def modality_predictions(self,
                             batch_inputs: torch.Tensor,
                             batch_data_samples,
                             source: str = 'view',
                             top_k: int = 100) -> Dict[str, List[torch.Tensor]]:
        """Fused and per-modality class probabilities on labelled pixels.

        Runs in eval mode (as at test time; every module's mode is restored
        afterwards) under ``no_grad``, with the batch's published presence mask for
        the fused prediction. Each source's logits are resized to the label size
        with its head's ``align_corners``, as mmseg's loss does.

        Args:
            batch_inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
            batch_data_samples (list[SegDataSample]): Its samples, with
                ``gt_sem_seg``: the labelled pixels (label != ``ignore_index``).
            source (str): ``'view'`` (the shared head on each unimodal view),
                ``'aux'`` (the auxiliary heads on each stream's features) or
                ``'auto'``.
            top_k (int): At most this many labelled pixels per image, evenly
                subsampled in raster order (indices ``floor(j * n / top_k)`` of
                the ``n`` labelled pixels): the same pixels for every source.

        Returns:
            dict[str, list[Tensor]]: ``{'fused': [...], '<modality>': [...]}``
            (used modalities), one ``(K_i, num_classes)`` tensor per image,
            ``K_i = min(top_k, n_i)``; rows sum to 1.
        """
        source = self._source(source, 'modality_predictions')
        self._check_dual_stream('modality_predictions')
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(
                f'RGBTEncoderDecoder.modality_predictions: top_k={top_k!r}; '
                'expected an int >= 1 (pixels per image)')
        labels = self._labels(batch_data_samples, 'modality_predictions')
        backbone = self.backbone
        with _inference_mode(self):
            presence = backbone.resolve_presence(None, batch_inputs.shape[0],
                                                 batch_inputs.device)
            streams = backbone.forward_streams(batch_inputs)
            fused = backbone.fuse(backbone.replace_missing(streams, presence), presence)
            logits = {
                'fused':
                (self.decode_head(self._neck(fused)), self.decode_head.align_corners)
            }
            for name in self.modality_names:
                if source == 'aux':
                    head = self._aux_head(name)
                    logits[name] = (head(self._neck(streams[name])), head.align_corners)
                else:
                    logits[name] = (self._view_logits(streams, name),
                                    self.decode_head.align_corners)
        valid = (labels != self.decode_head.ignore_index).flatten(1)
        picks = []
        for row in valid:
            where = row.nonzero().squeeze(1)
            n = where.numel()
            if n > top_k:
                where = where[torch.arange(top_k, device=where.device) * n // top_k]
            picks.append(where)
        result = {}
        for key, (value, align) in logits.items():
            probs = self._probabilities(value, labels.shape[-2:], align).flatten(2)
            result[key] = [p[:, where].t() for p, where in zip(probs, picks)]
        return result

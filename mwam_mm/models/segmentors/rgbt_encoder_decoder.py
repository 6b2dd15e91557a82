"""mmseg's EncoderDecoder with per-modality outputs and auxiliary decode heads."""
import copy
import logging
from typing import Dict, List, Optional

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
from ..modality_outputs import ModalityOutputsMixin, check_aux_arguments, view_mode


def _alias(name: str, value, old_name: str, old_value):
    """``value``, or the deprecated ``old_name``'s ``old_value``; not both."""
    if value is not None and old_value is not None:
        raise ValueError(f'RGBTEncoderDecoder: give {name} or its old name '
                         f'{old_name}, not both')
    return value if value is not None else old_value


def _rename_old_aux_head_keys(state_dict, prefix, *args) -> None:
    """``modality_aux_head.*`` (the heads' name before the detectors' vocabulary)
    -> ``aux_heads.*`` in a state dict being loaded."""
    old = prefix + 'modality_aux_head.'
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + 'aux_heads.' + key[len(old):]] = state_dict.pop(key)


@MODELS.register_module()
class RGBTEncoderDecoder(ModalityOutputsMixin, EncoderDecoder):
    """mmseg's ``EncoderDecoder`` for RGB-T: per-modality outputs and RSC's
    auxiliary per-modality decode heads.

    With the default arguments it is mmseg's ``EncoderDecoder`` exactly (same
    losses, same predictions), with the batch's modality state passed to the
    backbone (the samples' ``missing_modalities``, and ``modality_weights`` in
    training: :meth:`extract_feat` takes the metainfo), plus the backbone's own
    losses (:meth:`DualStreamBackbone.substitute_losses`, e.g. a learned
    substitute's alignment loss), which every training :meth:`loss` adds.

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
    ``ignore_modalities``). With ``aux_input='view'`` each auxiliary head reads
    the modality's unimodal view instead (the fusion's output with only that
    modality present, through the neck, with gradient): a training forward of the
    fusion like the fused path's, so ``fused_grad_scale`` applies to its gradient
    into the streams (BTW's ``sample_weights`` do not), and the norm layers after
    the streams (fusion, neck, heads) update their running statistics with it, as
    with modality dropout's single-camera samples.

    **Per-modality outputs** (:class:`~mwam_mm.models.ModalityOutputsMixin`):
    while ``modality_scores_source`` is ``'aux'`` or ``'view'``, :meth:`loss`
    also returns, per used modality ``m``, the detached 0-dim tensors
    ``modality_score_<m>`` (the sum over the labelled pixels, label !=
    ``decode_head.ignore_index``, of modality ``m``'s unimodal probability of the
    ground-truth class, the logits resized to the label size as mmseg's loss does)
    and ``modality_count_<m>`` (the number of those pixels, float). ``'aux'``:
    the auxiliary head's own training logits. ``'view'``: the shared decode head,
    under ``no_grad``, in the model's current mode with norm running statistics
    left alone (the detectors' view strategy), applied to the unimodal view
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
        aux_loss_weight (float): lambda, the weight of the auxiliary losses.
            Defaults to 0: no auxiliary heads, the plain model.
        aux_heads (str): ``'separate'`` (default): one new head per
            modality (``aux_heads.<m>``, as in the detectors); ``'shared'``: the
            main ``decode_head`` itself is applied to each stream's own features
            (no extra parameters; its weights learn from the fused and the
            unimodal losses).
        aux_input (str): What each auxiliary decode head sees: ``'stream'``
            (default, RSC: the modality's own stream features through the neck)
            or ``'view'`` (ours: the fusion's output with only that modality
            present, the model's own missing-modality view, with gradient).
            With ``aux_heads='shared'``, ``'view'`` trains the decode head on
            every single-modality input of every sample, next to the full one:
            all of modality dropout's subsets at once, without dropping the full
            one. mmseg's ``auxiliary_head`` stays on the fused features.
        aux_head (dict, optional): Decode-head config of the separate auxiliary
            heads, built once per modality. Defaults to ``None``: a copy of
            ``decode_head``'s config. It must predict the same ``num_classes``,
            and its ``loss`` must be mmseg's ``forward`` + ``loss_by_feat``
            (every ``BaseDecodeHead`` that does not override ``loss``).
        modality_aux_heads (str, optional): Old name of ``aux_heads`` (still
            accepted; checkpoints with ``modality_aux_head.*`` keys load).
        modality_aux_head (dict, optional): Old name of ``aux_head``.
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
                 aux_loss_weight: float = 0.0,
                 aux_heads: Optional[str] = None,
                 aux_head: Optional[dict] = None,
                 aux_input: str = 'stream',
                 modality_aux_heads: Optional[str] = None,
                 modality_aux_head: Optional[dict] = None):
        aux_heads = _alias('aux_heads', aux_heads, 'modality_aux_heads',
                           modality_aux_heads) or 'separate'
        aux_head = _alias('aux_head', aux_head, 'modality_aux_head', modality_aux_head)
        # before building anything: the same checks as the detectors', then ours
        check_aux_arguments(type(self).__name__, aux_loss_weight, aux_heads, aux_input)
        self._check_head_config(aux_head, aux_heads)
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
        # checkpoints written before the heads had the detectors' name load too
        self._register_load_state_dict_pre_hook(_rename_old_aux_head_keys)
        # aux_loss_weight=0: a given aux_head, aux_heads or aux_input is ignored
        # with a warning (an ablation that sets only the weight to 0 stays valid)
        self._init_aux(
            aux_loss_weight,
            aux_heads,
            aux_input,
            unused=('aux_head', ) if aux_head is not None else ())
        if not self.with_aux:
            return
        if aux_heads == 'shared':
            self._check_head(self.decode_head, 'decode_head (shared)')
            return
        if aux_head is None:
            print_log(
                'RGBTEncoderDecoder: aux_head is not given; each modality '
                "gets a copy of decode_head's config "
                f"({decode_head.get('type')})",
                logger='current',
                level=logging.INFO)
            aux_head = decode_head
        self.aux_heads = ModuleDict({
            name:
            build_from_registry(SEG_MODELS, copy.deepcopy(aux_head))
            for name in self.modality_names
        })
        for name, head in self.aux_heads.items():
            self._check_head(head, f'aux_head ({name})')

    # the names before the detectors' vocabulary, kept for code that reads them
    @property
    def modality_aux_head(self) -> Optional[ModuleDict]:
        """Deprecated name of :attr:`aux_heads`."""
        return self.aux_heads

    @property
    def modality_aux_heads(self) -> str:
        """Deprecated name of :attr:`aux_head_mode`."""
        return self.aux_head_mode

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_head_config(head, sharing) -> None:
        if head is not None and not isinstance(head, dict):
            raise TypeError('RGBTEncoderDecoder: aux_head must be a decode-head '
                            f'config dict (or None for a copy of decode_head), got '
                            f'{type(head).__name__}')
        if head is not None and sharing == 'shared':
            raise ValueError("RGBTEncoderDecoder: aux_heads='shared' reuses the main "
                             'decode_head, so aux_head must be None; give '
                             "aux_heads='separate' to build heads from aux_head")

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
                'SegformerHead, UPerHead, ...); set aux_head to one')
        if head.num_classes != self.num_classes:
            raise ValueError(
                f'RGBTEncoderDecoder: {what} has num_classes={head.num_classes}, '
                f'decode_head has {self.num_classes}; set the same num_classes')

    # ---------------------------------------------------------------- contract
    def _aux_head(self, name: str) -> BaseDecodeHead:
        return self.decode_head if self.aux_heads is None else self.aux_heads[name]

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

    def _truth_probs(self, logits: torch.Tensor, labels: torch.Tensor,
                     align_corners) -> torch.Tensor:
        """The probability of the ground-truth class at each labelled pixel."""
        probs = self._probabilities(logits.detach(), labels.shape[-2:], align_corners)
        valid = labels != self.decode_head.ignore_index
        index = labels.masked_fill(~valid, 0).unsqueeze(1)
        return probs.gather(1, index).squeeze(1)[valid]

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
        source = self._scores_source()
        # EncoderDecoder.loss's features, the streams' own outputs kept
        streams, x, extra = self._streams_and_fused(
            inputs, data_samples, with_losses=True)
        losses = self._decode_head_forward_train(x, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))

        aux_logits = {}
        if self.with_aux:
            for name in self.modality_names:
                head = self._aux_head(name)
                # forward + loss_by_feat is the head's loss(), logits kept
                aux_logits[name] = head(self._aux_features(streams, name))
                self._add_aux_losses(
                    losses,
                    head.loss_by_feat(aux_logits[name], data_samples),
                    name,
                    prefix='aux.')

        if source is not None:
            labels = self._labels(data_samples, 'loss')
            views = self._views(streams) if source == 'view' else None
            for name in self.modality_names:
                if source == 'aux':
                    logits = aux_logits[name]
                    align = self._aux_head(name).align_corners
                else:
                    with torch.no_grad(), view_mode(self):
                        logits = self.decode_head(views[name])
                    align = self.decode_head.align_corners
                losses.update(
                    self._score_entries(name, self._truth_probs(logits, labels, align)))
        return self._add_extra_losses(losses, extra)

    # ------------------------------------------------------------- predictions
    @torch.no_grad()
    def modality_predictions(self,
                             batch_inputs: torch.Tensor,
                             batch_data_samples,
                             source: str = 'view',
                             top_k: int = 100) -> Dict[str, List[torch.Tensor]]:
        """Fused and per-modality class probabilities on labelled pixels.

        Runs in the model's current mode (call it under ``model.eval()`` for the
        test-time behaviour, as BTW's pass does; norm running statistics are never
        updated) under ``no_grad``, with the samples' ``missing_modalities`` for
        the fused prediction. Each source's logits are resized to the label size
        with its head's ``align_corners``, as mmseg's loss does.

        Args:
            batch_inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
            batch_data_samples (list[SegDataSample]): Its samples, with
                ``gt_sem_seg``: the labelled pixels (label != ``ignore_index``).
            source (str): ``'view'`` (the shared head on each unimodal view),
                ``'aux'`` (the auxiliary heads on what they read, ``aux_input``) or
                ``'auto'``.
            top_k (int): At most this many labelled pixels per image, evenly
                subsampled in raster order (indices ``floor(j * n / top_k)`` of
                the ``n`` labelled pixels): the same pixels for every source.

        Returns:
            dict[str, list[Tensor]]: ``{'fused': [...], '<modality>': [...]}``
            (used modalities), one ``(K_i, num_classes)`` tensor per image,
            ``K_i = min(top_k, n_i)``; rows sum to 1.
        """
        source = self._check_prediction_args(source, top_k)
        labels = self._labels(batch_data_samples, 'modality_predictions')
        with view_mode(self):
            streams, fused, _ = self._streams_and_fused(batch_inputs,
                                                        batch_data_samples)
            logits = {
                'fused': (self.decode_head(fused), self.decode_head.align_corners)
            }
            views = self._views(streams) if source == 'view' else None
            for name in self.modality_names:
                if source == 'aux':
                    head = self._aux_head(name)
                    feats = self._aux_features(streams, name)
                    logits[name] = (head(feats), head.align_corners)
                else:
                    logits[name] = (self.decode_head(views[name]),
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

    # mmseg's entry points, with the batch's modality state -------------------
    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: List[dict]):
        """``EncoderDecoder.encode_decode`` on the features of
        :meth:`extract_feat` (the metas' ``missing_modalities`` apply; whole and
        slide inference both come here)."""
        x = self.extract_feat(inputs, batch_img_metas)
        return self.decode_head.predict(x, batch_img_metas, self.test_cfg)

    def _forward(self, inputs: torch.Tensor, data_samples=None):
        """``EncoderDecoder._forward`` (raw decode-head logits) on the features of
        :meth:`extract_feat`."""
        return self.decode_head.forward(self.extract_feat(inputs, data_samples))

"""Single-stage RGB-T detector: per-modality outputs and RSC's auxiliary heads.

What the RGB-T detectors and the segmentor share (argument checks, the backbone
pass with the batch's modality state, the unimodal views, the auxiliary losses'
names) is :class:`~mwam_mm.models.ModalityOutputsMixin`;
:class:`RGBTSingleStageDetector` is the single-stage detector (RetinaNet and the
other anchor heads).
"""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import SingleStageDetector
from mmdet.models.utils import unpack_gt_instances
from mmengine.model import ModuleDict
from mmengine.registry import MODELS

from ...registry_utils import build_from_registry
from ..modality_outputs import ModalityOutputsMixin, view_mode


def _anchor_head_supported(head: nn.Module) -> bool:
    """An AnchorHead whose targets and loss are mmdet's: the targets can be
    computed once and shared by every head (RetinaHead, SSD-style heads ...)."""
    cls = type(head)
    return (isinstance(head, AnchorHead) and cls.get_targets is AnchorHead.get_targets
            and cls.loss_by_feat is AnchorHead.loss_by_feat
            and cls.loss is BaseDenseHead.loss)


def _head_loss(head: nn.Module, feats: tuple, gt: tuple, batch_data_samples) -> tuple:
    """``(outputs, losses)`` of a dense head: ``BaseDenseHead.loss`` with its
    outputs kept (for the scores), through the head's public ``loss_by_feat``; a
    head with a ``loss`` of its own is asked for it (no outputs: no scores)."""
    if type(head).loss is not BaseDenseHead.loss:
        return (None, ), head.loss(feats, batch_data_samples)
    gts, ignores, metas = gt
    outs = head(feats)
    return outs, head.loss_by_feat(*outs, gts, metas, ignores)


def _flat_scores(head: nn.Module, cls_scores: List[torch.Tensor]) -> torch.Tensor:
    """``(N, A, C')`` logits, anchors in the order of the head's targets (level,
    then location, then anchor)."""
    batch = cls_scores[0].shape[0]
    return torch.cat([
        score.permute(0, 2, 3, 1).reshape(batch, -1, head.cls_out_channels)
        for score in cls_scores
    ],
                     dim=1)


@MODELS.register_module()
class RGBTSingleStageDetector(ModalityOutputsMixin, SingleStageDetector):
    """A single-stage detector (RetinaNet, SSD-style anchor heads, FCOS ...) on a
    dual-stream backbone, with per-modality outputs and, optionally, one
    auxiliary head per modality (RSC).

    With the defaults it is mmdet's ``SingleStageDetector`` (what ``RetinaNet``
    is): same losses, same predictions, same checkpoints.

    **Auxiliary heads** (``aux_loss_weight > 0``): training computes the streams
    once; the fused features give the detector's usual losses, and each modality's
    own stream features go through the shared neck into its auxiliary head: a
    separate copy of ``bbox_head`` built from its config (``aux_heads='separate'``)
    or the detector's own ``bbox_head`` (``'shared'``, with gradient). Their
    losses are reported with the modality as suffix (``loss_cls_rgb``,
    ``loss_bbox_thermal``), scaled by ``aux_loss_weight``: the naming contract of
    :class:`mwam_mm.engine.MWAMHook`'s ``'loss'`` mode. The auxiliary heads take
    the streams' own features, before the backbone's ``fused_grad_scale`` (RSC-MD's
    modality decoupling scales only the fused path's gradient into the streams),
    also for samples the fused path treats as missing. With ``aux_input='view'``
    an auxiliary head reads a training forward of the fusion like the fused
    path's: ``fused_grad_scale`` applies to its gradient into the streams (BTW's
    ``sample_weights`` do not), and the norm layers after the streams (fusion,
    neck, head) update their running statistics with it, as with modality
    dropout's single-camera samples. Inference uses the fused
    path only: the auxiliary heads cost nothing at test time. Modalities in the
    backbone's ``ignore_modalities`` get no auxiliary head and no score.

    **Scores** (:class:`~mwam_mm.models.ModalityOutputsMixin`): while
    ``modality_scores_source`` is ``'aux'`` or ``'view'``, ``loss()`` adds
    ``modality_score_<m>`` / ``modality_count_<m>``: the scoring units are the
    positive anchors of the head's own target assignment (computed once: anchors
    and ground truth are the same for every head, and also shared by the fused and
    auxiliary losses), the probability is the sigmoid of the ground-truth class's
    logit (softmax at the label for a softmax head). This needs an ``AnchorHead``
    whose ``get_targets``/``loss_by_feat`` are mmdet's (RetinaHead is); other heads
    train as usual but cannot give scores.

    Args:
        aux_loss_weight (float): lambda, weight of the auxiliary losses; 0
            (default) builds no auxiliary heads.
        aux_heads (str): ``'separate'`` (default) or ``'shared'``.
        aux_input (str): What each auxiliary head sees: ``'stream'`` (default,
            RSC: the modality's own stream features through the neck) or
            ``'view'`` (ours: the fusion's output with only that modality
            present, the model's own missing-modality view, with gradient).
            With ``aux_heads='shared'``, ``'view'`` trains the detector on every
            single-modality input of every sample, next to the full one: all of
            modality dropout's subsets at once, without dropping the full one.
        **kwargs: Arguments of ``SingleStageDetector`` (``backbone``, ``neck``,
            ``bbox_head``, ``train_cfg``, ``test_cfg``, ``data_preprocessor``,
            ``init_cfg``).
    """

    def __init__(self,
                 *args,
                 aux_loss_weight: float = 0.0,
                 aux_heads: str = 'separate',
                 aux_input: str = 'stream',
                 bbox_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 **kwargs):
        head_cfg = copy.deepcopy(bbox_head)
        super().__init__(
            *args,
            bbox_head=bbox_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            **kwargs)
        self._init_aux(aux_loss_weight, aux_heads, aux_input)
        if self.with_aux and aux_heads == 'separate':
            head_cfg.update(train_cfg=train_cfg, test_cfg=test_cfg)
            self.aux_heads = ModuleDict({
                name:
                build_from_registry(MODELS, copy.deepcopy(head_cfg))
                for name in self.modality_names
            })

    def _aux_head(self, name: str) -> nn.Module:
        return self.bbox_head if self.aux_heads is None else self.aux_heads[name]

    # targets and losses --------------------------------------------------------
    def _check_scores_head(self) -> None:
        if not _anchor_head_supported(self.bbox_head):
            raise TypeError(
                f'{type(self).__name__}: per-modality scores need an AnchorHead '
                '(e.g. RetinaHead) whose get_targets, loss_by_feat and loss are '
                f"mmdet's, to score the positive anchors; "
                f'{type(self.bbox_head).__name__} is not one. Use such a head, or '
                'leave modality_scores_source unset')

    def _anchor_targets(self, cls_scores: List[torch.Tensor], gt: tuple) -> dict:
        """The head's own target assignment, through its public ``get_anchors``
        and ``get_targets``: the positive anchors are the scoring units."""
        head = self.bbox_head
        gts, ignores, metas = gt
        sizes = [score.shape[-2:] for score in cls_scores]
        if len(sizes) != head.prior_generator.num_levels:
            raise RuntimeError(
                f'{type(self).__name__}: the head gave {len(sizes)} levels, its '
                f'anchor generator has {head.prior_generator.num_levels}')
        anchor_list, valid_list = head.get_anchors(
            sizes, metas, device=cls_scores[0].device)
        (labels, label_weights, bbox_targets, bbox_weights,
         avg_factor) = head.get_targets(
             anchor_list, valid_list, gts, metas, batch_gt_instances_ignore=ignores)
        return dict(labels=labels, avg_factor=avg_factor)

    def _positive_probs(self, head: nn.Module, cls_scores: List[torch.Tensor],
                        targets: dict) -> torch.Tensor:
        """The probability of the ground-truth class at each positive anchor."""
        logits = _flat_scores(head, cls_scores)
        labels = torch.cat(targets['labels'], dim=1)
        positive = (labels >= 0) & (labels < head.num_classes)
        logits, labels = logits[positive], labels[positive]
        if head.use_sigmoid_cls:
            chosen = logits.gather(1, labels[:, None]).squeeze(1)
            return chosen.sigmoid()
        return logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> dict:
        """The detector's losses, the auxiliary ones (``*_<modality>``), the
        per-modality scores while ``modality_scores_source`` is set, and the
        backbone's extra losses."""
        source = self._scores_source()
        if source is not None:
            self._check_scores_head()
        streams, fused, extra = self._streams_and_fused(
            batch_inputs, batch_data_samples, with_losses=True)
        head = self.bbox_head
        gt = unpack_gt_instances(batch_data_samples)
        outs, losses = _head_loss(head, fused, gt, batch_data_samples)
        aux_scores = {}
        if self.with_aux:
            for name in self.modality_names:
                aux_head = self._aux_head(name)
                aux_outs, aux = _head_loss(aux_head, self._aux_features(streams, name),
                                           gt, batch_data_samples)
                aux_scores[name] = aux_outs[0]
                self._add_aux_losses(losses, aux, name)
        if source is not None:
            # the positive anchors of the head's own assignment: the scoring units
            targets = self._anchor_targets(outs[0], gt)
            if source == 'view':
                views = self._views(streams)
                with torch.no_grad(), view_mode(self):
                    scores = {m: head(views[m])[0] for m in self.modality_names}
            else:
                scores = aux_scores
            for name in self.modality_names:
                probs = self._positive_probs(
                    self._aux_head(name) if source == 'aux' else head, scores[name],
                    targets)
                losses.update(self._score_entries(name, probs))
        return self._add_extra_losses(losses, extra)

    # predictions ---------------------------------------------------------------
    def _unit_probs(self, head: nn.Module,
                    cls_scores: List[torch.Tensor]) -> torch.Tensor:
        """``(N, A, C + 1)`` class probabilities per anchor, background last.

        A sigmoid head scores each class independently; its rows get a
        background column ``prod_c (1 - p_c)`` (no class present, under the
        head's own independence) and are renormalised to sum to 1. With one class
        this is exactly ``(p, 1 - p)``. A softmax head's rows are its softmax.
        """
        logits = _flat_scores(head, cls_scores).float()
        if not head.use_sigmoid_cls:
            return logits.softmax(dim=-1)
        probs = logits.sigmoid()
        # log(1 - sigmoid(z)) = logsigmoid(-z): exact for confident logits
        background = F.logsigmoid(-logits).sum(dim=-1, keepdim=True).exp()
        rows = torch.cat([probs, background], dim=-1)
        return rows / rows.sum(dim=-1, keepdim=True)

    def _fused_confidence(self, head: nn.Module,
                          cls_scores: List[torch.Tensor]) -> torch.Tensor:
        """``(N, A)``: the highest foreground class probability per anchor, as
        the head's own prediction ranks anchors."""
        logits = _flat_scores(head, cls_scores).float()
        if head.use_sigmoid_cls:
            return logits.sigmoid().max(dim=-1).values
        return logits.softmax(dim=-1)[..., :head.num_classes].max(dim=-1).values

    @torch.no_grad()
    def modality_predictions(self,
                             batch_inputs: torch.Tensor,
                             batch_data_samples,
                             source: str = 'view',
                             top_k: int = 100) -> Dict[str, List[torch.Tensor]]:
        """Class probabilities of each image's ``top_k`` anchors by fused
        confidence (highest foreground class probability), fused and per used
        modality; ``(K, num_classes + 1)`` rows summing to 1, background last
        (sigmoid heads: see :meth:`_unit_probs`). Runs in the model's current
        mode (call it under ``model.eval()`` for the test-time behaviour); norm
        running statistics are never updated.

        Args:
            batch_inputs (Tensor): The preprocessed batch.
            batch_data_samples (list): Its data samples (their
                ``missing_modalities`` apply to the fused prediction).
            source (str): ``'aux'`` or ``'view'``.
            top_k (int): Anchors kept per image.

        Returns:
            dict[str, list[Tensor]]: ``{'fused': [...], '<modality>': [...]}``.
        """
        source = self._check_prediction_args(source, top_k)
        head = self.bbox_head
        if not all(hasattr(head, a) for a in ('cls_out_channels', 'use_sigmoid_cls')):
            raise TypeError(
                f'{type(self).__name__}.modality_predictions needs a dense head '
                'with per-location class logits (cls_out_channels, '
                f'use_sigmoid_cls), such as RetinaHead; {type(head).__name__} has '
                'none')
        with view_mode(self):
            streams, fused, _ = self._streams_and_fused(batch_inputs,
                                                        batch_data_samples)
            scores = {'fused': head(fused)[0]}
            if source == 'view':
                views = self._views(streams)
                for name in self.modality_names:
                    scores[name] = head(views[name])[0]
            else:
                for name in self.modality_names:
                    scores[name] = self._aux_head(name)(self._aux_features(
                        streams, name))[0]
        confidence = self._fused_confidence(head, scores['fused'])
        keep = confidence.topk(min(top_k, confidence.shape[1]), dim=1).indices
        results = {}
        for key, cls_scores in scores.items():
            owner = head if key == 'fused' or source == 'view' else \
                self._aux_head(key)
            probs = self._unit_probs(owner, cls_scores)
            results[key] = [probs[i, keep[i]] for i in range(probs.shape[0])]
        return results

    # mmdet's entry points, with the batch's modality state -------------------
    def predict(self,
                batch_inputs: torch.Tensor,
                batch_data_samples,
                rescale: bool = True):
        """``SingleStageDetector.predict`` on the features of
        :meth:`extract_feat` (the samples' ``missing_modalities`` apply)."""
        x = self.extract_feat(batch_inputs, batch_data_samples)
        results_list = self.bbox_head.predict(x, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None):
        """``SingleStageDetector._forward`` (raw head outputs) on the features
        of :meth:`extract_feat`."""
        return self.bbox_head.forward(
            self.extract_feat(batch_inputs, batch_data_samples))

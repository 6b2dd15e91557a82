"""Two-stage RGB-T detector: per-modality outputs and RSC's auxiliary RoI heads."""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures.bbox import bbox2roi
from mmengine.model import ModuleDict
from mmengine.registry import MODELS

from ...registry_utils import build_from_registry
from ..modality_outputs import ModalityOutputsMixin, view_mode


def _roi_head_supported(roi_head: nn.Module) -> bool:
    """A StandardRoIHead whose loss and bbox_loss are mmdet's: its sampling and
    bbox forward can be run here step by step, with the same results."""
    cls = type(roi_head)
    return (isinstance(roi_head, StandardRoIHead) and roi_head.with_bbox
            and cls.loss is StandardRoIHead.loss
            and cls.bbox_loss is StandardRoIHead.bbox_loss)


@MODELS.register_module()
class RGBTTwoStageDetector(ModalityOutputsMixin, TwoStageDetector):
    """A two-stage detector (Faster R-CNN, Mask R-CNN ...) on a dual-stream
    backbone, with per-modality outputs and, optionally, an auxiliary RoI box
    head per modality (RSC).

    With the defaults it is mmdet's ``TwoStageDetector`` (what ``FasterRCNN``
    is): same losses, same predictions, same checkpoints.

    **Auxiliary heads** (``aux_loss_weight > 0``): training computes the streams
    once; the fused features give the RPN and RoI losses as usual. Each modality's
    own stream features go through the shared neck, and the RoI head's feature
    extractor (and shared head, if any) pools them on the *fused path's sampled
    RoIs*; an auxiliary box head (a separate copy of ``roi_head.bbox_head`` built
    from its config, ``aux_heads='separate'``, or the RoI head's own box head,
    ``'shared'``, with gradient) classifies and regresses them against the same
    targets. Its losses get the modality as suffix (``loss_cls_rgb``,
    ``loss_bbox_thermal``; accuracy ``acc_rgb``, not a loss), scaled by
    ``aux_loss_weight``. With ``aux_input='view'`` the extractor pools each
    modality's unimodal view (the fusion's output with only that modality
    present, through the neck, with gradient) on the same RoIs instead of its
    stream's own features.

    Why no per-modality RPN and no sampling of its own: RSC needs a unimodal loss
    whose gradient reaches each stream, and the RoI classification and regression
    loss on that stream's own pooled features is one; an extra RPN per modality
    would add parameters and a second, differently behaved proposal set, and its
    own sampling would make the modalities' losses (and the scores hooks compare)
    come from different regions. On the fused path's RoIs every head sees the same
    units with the same labels, the cost is one box-head forward per modality, and
    the RPN stays the fused one. The mask head (Mask R-CNN) has no auxiliary copy.

    With ``aux_input='stream'`` the auxiliary heads take the streams' own
    features, before the backbone's ``fused_grad_scale`` (RSC-MD's modality
    decoupling), also for samples the fused path treats as missing. A ``'view'``
    is a training forward of the fusion like the fused path's: the backbone's
    ``fused_grad_scale`` applies to its gradient into the streams (BTW's
    ``sample_weights`` do not), and the norm layers after the streams (fusion,
    neck, RoI head) update their running statistics with it, as with modality
    dropout's single-camera samples.
    Inference uses the fused path only. Modalities in the backbone's
    ``ignore_modalities`` get no head and no score.

    **Scores** (:class:`~mwam_mm.models.ModalityOutputsMixin`): while
    ``modality_scores_source`` is ``'aux'`` or ``'view'``, ``loss()`` adds
    ``modality_score_<m>`` / ``modality_count_<m>`` over the fused RoI head's
    sampled RoIs with their labels, *background included* (a RoI the unimodal
    head calls background where the fused one was taught background counts as
    right): the probability is the softmax of the box head's ``cls_score`` at the
    label. ``'view'`` runs the RoI head's own box head on the unimodal view's
    features of the same RoIs, without gradient.

    Auxiliary heads and scores need a ``StandardRoIHead`` (not a cascade).

    Args:
        aux_loss_weight (float): lambda, weight of the auxiliary losses; 0
            (default) builds no auxiliary heads.
        aux_heads (str): ``'separate'`` (default) or ``'shared'``.
        aux_input (str): What each auxiliary box head sees: ``'stream'``
            (default, RSC: the modality's own stream features through the neck,
            pooled on the fused path's sampled RoIs) or ``'view'`` (ours: the
            fusion's output with only that modality present, the model's own
            missing-modality view, with gradient, pooled on the same RoIs).
            With ``aux_heads='shared'``, ``'view'`` trains the RoI head on every
            single-modality input of every sample, next to the full one: all of
            modality dropout's subsets at once, without dropping the full one
            (the RPN is trained on the full input only).
        **kwargs: Arguments of ``TwoStageDetector`` (``backbone``, ``neck``,
            ``rpn_head``, ``roi_head``, ``train_cfg``, ``test_cfg``,
            ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 rpn_head: Optional[dict] = None,
                 roi_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 aux_loss_weight: float = 0.0,
                 aux_heads: str = 'separate',
                 aux_input: str = 'stream'):
        box_head_cfg = copy.deepcopy((roi_head or {}).get('bbox_head'))
        super().__init__(
            backbone=backbone,
            neck=neck,
            rpn_head=rpn_head,
            roi_head=roi_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._init_aux(aux_loss_weight, aux_heads, aux_input)
        if self.with_aux:
            self._check_roi_head('auxiliary heads (aux_loss_weight > 0)')
            if aux_heads == 'separate':
                self.aux_heads = ModuleDict({
                    name:
                    build_from_registry(MODELS, copy.deepcopy(box_head_cfg))
                    for name in self.modality_names
                })

    def _check_roi_head(self, what: str) -> None:
        roi_head = getattr(self, 'roi_head', None)
        if roi_head is None or not _roi_head_supported(roi_head):
            raise TypeError(
                f'{type(self).__name__}: {what} need a StandardRoIHead with a box '
                "head whose loss and bbox_loss are mmdet's (Faster R-CNN's, Mask "
                f'R-CNN\'s); got {type(roi_head).__name__}')

    def _aux_box_head(self, name: str) -> nn.Module:
        if self.aux_heads is None:
            return self.roi_head.bbox_head
        return self.aux_heads[name]

    def _box_forward(self, feats: tuple, rois: torch.Tensor,
                     box_head: nn.Module) -> tuple:
        """``(cls_score, bbox_pred)`` of ``box_head`` on ``rois`` pooled from
        ``feats`` by the RoI head's extractor (and shared head)."""
        roi_head = self.roi_head
        extractor = roi_head.bbox_roi_extractor
        pooled = extractor(feats[:extractor.num_inputs], rois)
        if roi_head.with_shared_head:
            pooled = roi_head.shared_head(pooled)
        return box_head(pooled)

    @staticmethod
    def _class_probs(box_head: nn.Module, cls_score: torch.Tensor) -> torch.Tensor:
        """``(R, C + 1)`` probabilities, as the box head's prediction takes them."""
        if box_head.custom_cls_channels:
            return box_head.loss_cls.get_activation(cls_score)
        return F.softmax(cls_score.float(), dim=-1)

    # losses ------------------------------------------------------------------
    def _rpn_loss(self, x: tuple, batch_data_samples) -> tuple:
        """The RPN's losses and proposals, as TwoStageDetector.loss makes them."""
        if not self.with_rpn:
            if batch_data_samples[0].get('proposals', None) is None:
                raise ValueError(
                    f'{type(self).__name__}: without rpn_head the data samples '
                    'need precomputed `proposals`')
            return {}, [sample.proposals for sample in batch_data_samples]
        proposal_cfg = self.train_cfg.get('rpn_proposal', self.test_cfg.rpn)
        rpn_data_samples = copy.deepcopy(batch_data_samples)
        for sample in rpn_data_samples:  # class-agnostic RPN
            sample.gt_instances.labels = torch.zeros_like(sample.gt_instances.labels)
        rpn_losses, rpn_results_list = self.rpn_head.loss_and_predict(
            x, rpn_data_samples, proposal_cfg=proposal_cfg)
        for key in list(rpn_losses):
            if 'loss' in key and 'rpn' not in key:
                rpn_losses[f'rpn_{key}'] = rpn_losses.pop(key)
        return rpn_losses, rpn_results_list

    def _roi_loss(self, x: tuple, rpn_results_list, batch_data_samples) -> tuple:
        """StandardRoIHead.loss step by step, keeping its sampled RoIs: returns
        the losses, the RoIs, the sampling results and the RoIs' labels."""
        roi_head = self.roi_head
        gts, ignores, _ = unpack_gt_instances(batch_data_samples)
        sampling_results = []
        for i, rpn_results in enumerate(rpn_results_list):
            rpn_results.priors = rpn_results.pop('bboxes')
            assign_result = roi_head.bbox_assigner.assign(rpn_results, gts[i],
                                                          ignores[i])
            sampling_results.append(
                roi_head.bbox_sampler.sample(
                    assign_result,
                    rpn_results,
                    gts[i],
                    feats=[level[i][None] for level in x]))
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = roi_head._bbox_forward(x, rois)
        loss_and_target = roi_head.bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'],
            bbox_pred=bbox_results['bbox_pred'],
            rois=rois,
            sampling_results=sampling_results,
            rcnn_train_cfg=roi_head.train_cfg)
        losses = dict(loss_and_target['loss_bbox'])
        if roi_head.with_mask:
            mask_results = roi_head.mask_loss(x, sampling_results,
                                              bbox_results['bbox_feats'], gts)
            losses.update(mask_results['loss_mask'])
        labels = loss_and_target['bbox_targets'][0]
        return losses, rois, sampling_results, labels

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> dict:
        """The detector's losses, the auxiliary ones (``*_<modality>``), the
        per-modality scores while ``modality_scores_source`` is set, and the
        backbone's extra losses."""
        source = self._scores_source()
        if source is not None:
            self._check_roi_head('per-modality scores')
        streams, x, extra = self._streams_and_fused(
            batch_inputs, batch_data_samples, with_losses=True)
        losses, rpn_results_list = self._rpn_loss(x, batch_data_samples)
        if not self.with_aux and source is None:
            # TwoStageDetector.loss, with the batch's modality state
            losses.update(self.roi_head.loss(x, rpn_results_list, batch_data_samples))
            return self._add_extra_losses(losses, extra)
        roi_losses, rois, sampling_results, labels = self._roi_loss(
            x, rpn_results_list, batch_data_samples)
        losses.update(roi_losses)
        aux_scores = {}
        if self.with_aux:
            for name in self.modality_names:
                box_head = self._aux_box_head(name)
                cls_score, bbox_pred = self._box_forward(
                    self._aux_features(streams, name), rois, box_head)
                aux_scores[name] = cls_score
                aux = box_head.loss_and_target(
                    cls_score=cls_score,
                    bbox_pred=bbox_pred,
                    rois=rois,
                    sampling_results=sampling_results,
                    rcnn_train_cfg=self.roi_head.train_cfg)['loss_bbox']
                self._add_aux_losses(losses, aux, name)
        if source is not None:
            box_head = self.roi_head.bbox_head
            if source == 'view':
                views = self._views(streams)
                with torch.no_grad(), view_mode(self):
                    scores = {
                        m: self._box_forward(views[m], rois, box_head)[0]
                        for m in self.modality_names
                    }
            else:
                scores = aux_scores
            for name in self.modality_names:
                owner = self._aux_box_head(name) if source == 'aux' else box_head
                probs = self._class_probs(owner, scores[name].detach())
                losses.update(
                    self._score_entries(name,
                                        probs.gather(1, labels[:, None]).squeeze(1)))
        return self._add_extra_losses(losses, extra)

    # predictions ---------------------------------------------------------------
    @torch.no_grad()
    def modality_predictions(self,
                             batch_inputs: torch.Tensor,
                             batch_data_samples,
                             source: str = 'view',
                             top_k: int = 100) -> Dict[str, List[torch.Tensor]]:
        """Class probabilities of each image's ``top_k`` proposals by fused
        confidence (the fused box head's highest foreground probability), fused
        and per used modality; ``(K, num_classes + 1)`` softmax rows, background
        last. The proposals are the fused RPN's test-time ones (or the samples'
        ``proposals``). Runs in the model's current mode (call it under
        ``model.eval()`` for the test-time behaviour); norm running statistics
        are never updated.

        Args:
            batch_inputs (Tensor): The preprocessed batch.
            batch_data_samples (list): Its data samples (image metas; optional
                precomputed ``proposals``).
            source (str): ``'aux'`` or ``'view'``.
            top_k (int): Proposals kept per image.

        Returns:
            dict[str, list[Tensor]]: ``{'fused': [...], '<modality>': [...]}``.
        """
        source = self._check_prediction_args(source, top_k)
        self._check_roi_head('per-modality predictions')
        given = batch_data_samples[0].get('proposals', None) is not None
        if not given and not self.with_rpn:
            raise ValueError(
                f'{type(self).__name__}.modality_predictions: without rpn_head the '
                'data samples need precomputed `proposals`')
        box_head = self.roi_head.bbox_head
        with view_mode(self):
            streams, x, _ = self._streams_and_fused(batch_inputs, batch_data_samples)
            if given:
                proposals = [sample.proposals for sample in batch_data_samples]
            else:
                proposals = self.rpn_head.predict(x, batch_data_samples, rescale=False)
            rois = bbox2roi([p.bboxes for p in proposals])
            probs = {
                'fused':
                self._class_probs(box_head,
                                  self._box_forward(x, rois, box_head)[0])
            }
            if source == 'view':
                views = self._views(streams)
                for name in self.modality_names:
                    probs[name] = self._class_probs(
                        box_head,
                        self._box_forward(views[name], rois, box_head)[0])
            else:
                for name in self.modality_names:
                    head = self._aux_box_head(name)
                    probs[name] = self._class_probs(
                        head,
                        self._box_forward(
                            self._aux_features(streams, name), rois, head)[0])
        confidence = probs['fused'][:, :box_head.num_classes].max(dim=1).values
        results = {key: [] for key in probs}
        for i in range(len(proposals)):
            index = torch.nonzero(rois[:, 0] == i, as_tuple=False).squeeze(1)
            order = confidence[index].topk(min(top_k, index.numel())).indices
            for key, value in probs.items():
                results[key].append(value[index[order]])
        return results

    # mmdet's entry points, with the batch's modality state -------------------
    def _proposals(self, x: tuple, batch_data_samples) -> list:
        """The RPN's test-time proposals, or the samples' own ``proposals``."""
        if batch_data_samples[0].get('proposals', None) is None:
            if not self.with_rpn:
                raise ValueError(
                    f'{type(self).__name__}: without rpn_head the data samples '
                    'need precomputed `proposals`')
            return self.rpn_head.predict(x, batch_data_samples, rescale=False)
        return [sample.proposals for sample in batch_data_samples]

    def predict(self,
                batch_inputs: torch.Tensor,
                batch_data_samples,
                rescale: bool = True):
        """``TwoStageDetector.predict`` on the features of :meth:`extract_feat`
        (the samples' ``missing_modalities`` apply)."""
        x = self.extract_feat(batch_inputs, batch_data_samples)
        results_list = self.roi_head.predict(
            x,
            self._proposals(x, batch_data_samples),
            batch_data_samples,
            rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None):
        """``TwoStageDetector._forward`` (raw head outputs) on the features of
        :meth:`extract_feat`."""
        x = self.extract_feat(batch_inputs, batch_data_samples)
        roi_outs = self.roi_head.forward(x, self._proposals(x, batch_data_samples),
                                         batch_data_samples)
        return (roi_outs, )

"""Per-modality predictions: what OGM-GE, RSC-MD and BTW need from a model.

A model that offers them mixes in :class:`ModalityOutputsMixin` (our RGB-T
detectors and segmentors do). Each modality's *unimodal prediction* comes from one
of two sources:

- ``'aux'``: the model's auxiliary head for that modality (RSC's heads), fed by
  what the model's ``aux_input`` says: the modality's own stream features
  (``'stream'``, the default) or its unimodal view (``'view'``, below, with
  gradient in training); it exists only when the model was built with auxiliary
  heads (``aux_loss_weight > 0``);
- ``'view'``: the model's own (shared) head applied, under ``no_grad``, to the
  *unimodal view* of the fused feature: the fusion's output when only that modality
  is present (the other streams replaced as known-missing), which for ``AddFusion``
  is the stream's feature itself, for ``GatedFusion`` too, and for
  ``ConcatConvFusion`` the fusion layer applied to that modality's slice (with
  the zero substitute; a learned proxy's predictions are part of the view). This
  is the model's own missing-modality view, so it needs no extra parameters.

``'auto'`` (the default of every hook) takes ``'aux'`` when the model has auxiliary
heads (they are trained on exactly that view, so their scores are meaningful from
the first iteration), else ``'view'``.

The contract, used by the hooks of :mod:`mwam_mm.engine`:

- the batch's modality state comes from its data samples
  (:mod:`mwam_mm.presence`): ``missing_modalities`` and, in training,
  ``modality_weights``; :meth:`ModalityOutputsMixin.extract_feat` takes the
  samples (as mmdet3d's ``extract_img_feat(img, input_metas)``) and passes both to
  the backbone;
- :meth:`ModalityOutputsMixin.set_modality_scores` (a hook calls it, as
  mmdet's ``SetEpochInfoHook`` calls ``model.set_epoch``): ``None`` (default:
  nothing extra), or ``'aux'`` / ``'view'``. While set, ``loss()`` adds, for every
  modality ``m``, a detached 0-dim tensor ``modality_score_<m>`` and a detached
  0-dim tensor ``modality_count_<m>`` to the returned dict: the *sum* over the
  batch's scoring units (RetinaNet-type heads: the positive anchors; Faster R-CNN:
  the RoI head's sampled RoIs with their labels, background included; segmentation:
  the labelled pixels) of the unimodal probability of the ground-truth class, and
  the number of units, so that a hook can all-reduce both and take the mean. The
  keys contain no ``'loss'``: mmengine only logs them (as mmdet's RoI head returns
  its ``acc``).
- :meth:`modality_predictions` (inference mode, no gradient): per image and per
  source (``'fused'`` and each modality), the class probabilities of the same
  scoring units, for BTW's per-image KL divergence.
- :meth:`has_modality_heads`: whether auxiliary heads exist.
"""
import logging
import math
import numbers
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch.nn.modules.batchnorm import _BatchNorm

from ..presence import presence_from_data_samples, weights_from_data_samples

SOURCES = ('aux', 'view')
AUX_HEAD_MODES = ('separate', 'shared')
AUX_INPUTS = ('stream', 'view')
STREAM_API = ('layout', 'forward_streams', 'resolve_presence', 'replace_missing',
              'fuse')


@contextmanager
def view_mode(module: nn.Module):
    """The unimodal views' mode, one for every model class: in the block,
    batch-norm layers in training mode keep normalising with the batch's
    statistics but do not update their running statistics, and dropout and
    drop-path layers are off.

    The views without gradient (scores, BTW's predictions) are extra forwards of
    the fusion, neck and head: they must not pull the running statistics (used at
    test time) towards single-modality inputs, and a score should not depend on a
    dropout draw. In eval mode nothing changes: the views are test-time
    predictions.

    Args:
        module (nn.Module): Every such layer inside it is affected.
    """
    frozen, stopped = [], []
    for layer in module.modules():
        if isinstance(layer, _BatchNorm) and layer.training \
                and layer.track_running_stats:
            # training + track_running_stats=False: batch statistics, no update
            layer.track_running_stats = False
            frozen.append(layer)
        elif layer.training and (isinstance(layer, nn.modules.dropout._DropoutNd)
                                 or type(layer).__name__ == 'DropPath'):
            layer.training = False
            stopped.append(layer)
    try:
        yield
    finally:
        for layer in frozen:
            layer.track_running_stats = True
        for layer in stopped:
            layer.training = True


def check_aux_arguments(owner: str,
                        aux_loss_weight,
                        aux_heads,
                        aux_input='stream') -> float:
    """``aux_loss_weight`` as a float, after checking the arguments.

    Args:
        owner (str): The model's name, for the messages.
        aux_loss_weight (float): lambda; a finite number >= 0.
        aux_heads (str): ``'separate'`` or ``'shared'``.
        aux_input (str): ``'stream'`` or ``'view'``.
    """
    if isinstance(aux_loss_weight, bool) or not isinstance(
            aux_loss_weight,
            numbers.Real) or not math.isfinite(aux_loss_weight) or aux_loss_weight < 0:
        raise ValueError(
            f'{owner}: aux_loss_weight must be a finite number >= 0 (0 builds no '
            f'auxiliary heads), got {aux_loss_weight!r}')
    if aux_heads not in AUX_HEAD_MODES:
        raise ValueError(
            f'{owner}: aux_heads={aux_heads!r} is not one of {AUX_HEAD_MODES}: '
            "'separate' builds a copy of the head per modality, 'shared' applies "
            "the model's own head to each modality's features")
    if aux_input not in AUX_INPUTS:
        raise ValueError(f"{owner}: aux_input must be 'stream' or 'view', got "
                         f'{aux_input!r}')
    return float(aux_loss_weight)


def validate_source(source: str, owner: str) -> None:
    """Refuse a source other than ``'auto'``, ``'aux'`` or ``'view'``, naming
    ``owner`` (checked before there is a model, e.g. in a hook's constructor)."""
    if source != 'auto' and source not in SOURCES:
        raise ValueError(f"{owner}: unknown source {source!r}; expected 'auto', "
                         f"'aux' or 'view'")


def check_source(source: str, model, owner: str) -> str:
    """``'aux'``/``'view'`` for ``model`` from ``'auto'``/``'aux'``/``'view'``."""
    if not isinstance(model, ModalityOutputsMixin):
        raise TypeError(
            f'{owner} needs per-modality predictions, and the model '
            f'{type(model).__name__} has none; use one of the RGB-T model types '
            "(type='RGBTSingleStageDetector', 'RGBTTwoStageDetector' or "
            "'RGBTEncoderDecoder'), which provide them")
    if source == 'auto':
        return 'aux' if model.has_modality_heads() else 'view'
    validate_source(source, owner)
    if source == 'aux' and not model.has_modality_heads():
        raise ValueError(
            f"{owner}: source='aux' needs auxiliary per-modality heads, and "
            f'{type(model).__name__} was built without them; set the model\'s '
            "aux_loss_weight > 0 or use source='view'")
    return source


class ModalityOutputsMixin:
    """Mixed into RGB-T detectors and segmentors: see the module docstring.

    It is the one place of what the three RGB-T model classes share: the
    auxiliary-head options (``aux_loss_weight``, ``aux_heads``, ``aux_input``)
    and what the auxiliary heads read (:meth:`_aux_features`), the backbone
    pass with the batch's modality state, the unimodal views (one strategy:
    the model's current mode, norm running statistics never updated), the
    auxiliary losses' names and the score entries.

    Attributes (after :meth:`_init_aux`):
        aux_loss_weight (float): lambda, the weight of the auxiliary losses (may be
            changed during training, e.g. by a hook; the heads exist iff it was
            > 0 at construction).
        aux_head_mode (str): ``'separate'`` or ``'shared'``.
        aux_input (str): What each auxiliary head reads: ``'stream'`` (the
            modality's own stream features through the neck, RSC's input) or
            ``'view'`` (the modality's unimodal view, with gradient).
        aux_heads (ModuleDict or None): The separate auxiliary heads per used
            modality, else None.
    """

    modality_scores_source: Optional[str] = None
    with_aux: bool = False
    aux_input: str = 'stream'

    def _init_aux(self,
                  aux_loss_weight,
                  aux_heads,
                  aux_input: str = 'stream',
                  unused: Tuple[str, ...] = ()) -> None:
        """Check and keep the auxiliary-head options.

        With ``aux_loss_weight=0`` no auxiliary heads are built: a non-default
        ``aux_heads`` or ``aux_input`` (and the caller's ``unused`` options,
        e.g. the segmentor's ``aux_head``) is then ignored with a warning, so
        that an ablation setting only the weight to 0 stays valid.
        """
        owner = type(self).__name__
        self.aux_loss_weight = check_aux_arguments(owner, aux_loss_weight, aux_heads,
                                                   aux_input)
        self.aux_head_mode = aux_heads
        self.aux_input = aux_input
        self.with_aux = self.aux_loss_weight > 0
        if not self.with_aux:
            ignored = list(unused)
            ignored += [f'aux_heads={aux_heads!r}'] if aux_heads != 'separate' else []
            ignored += [f'aux_input={aux_input!r}'] if aux_input != 'stream' else []
            if ignored:
                print_log(
                    f'{owner}: aux_loss_weight=0, so no auxiliary per-modality '
                    f'heads are built; {" / ".join(ignored)} '
                    f'{"is" if len(ignored) == 1 else "are"} ignored',
                    logger='current',
                    level=logging.WARNING)
        self.aux_heads = None
        if self.with_aux:
            self._check_stream_backbone('auxiliary heads (aux_loss_weight > 0)')

    def has_modality_heads(self) -> bool:
        """Whether auxiliary per-modality heads exist (``aux_loss_weight > 0`` at
        construction, separate or shared)."""
        return self.with_aux

    def _check_stream_backbone(self, what: str) -> None:
        missing = [a for a in STREAM_API if not hasattr(self.backbone, a)]
        if missing:
            raise TypeError(
                f'{type(self).__name__}: {what} need a backbone with per-modality '
                f'streams ({", ".join(STREAM_API)}), such as DualStreamBackbone; '
                f'{type(self.backbone).__name__} has no {missing}')

    def _scores_source(self) -> Optional[str]:
        """The checked ``modality_scores_source``, ``'auto'`` resolved (``None``:
        no scores)."""
        source = self.modality_scores_source
        if source is None:
            return None
        source = check_source(source, self,
                              f'{type(self).__name__}.modality_scores_source')
        self._check_stream_backbone('per-modality scores')
        return source

    def _check_prediction_args(self, source: str, top_k) -> str:
        owner = f'{type(self).__name__}.modality_predictions'
        source = check_source(source, self, owner)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f'{owner}: top_k must be an int >= 1, got {top_k!r}')
        self._check_stream_backbone('per-modality predictions')
        return source

    def set_modality_scores(self, source: Optional[str]) -> None:
        """Make ``loss()`` add the per-modality scores from ``source`` (``'aux'``
        or ``'view'``), or stop (``None``); OGM-GE's hook calls it."""
        if source is not None:
            source = check_source(source, self,
                                  f'{type(self).__name__}.set_modality_scores')
        self.modality_scores_source = source

    # the batch's modality state, passed explicitly --------------------------
    def modality_state(
            self, batch_inputs: torch.Tensor, batch_data_samples
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """The batch's ``(B, M)`` presence mask and, in training, its per-sample
        modality weights (each ``None`` when the samples say nothing) from the
        data samples' metainfo, or from metainfo dicts (mmseg's
        ``batch_img_metas``). The backbone applies weights in training only."""
        layout = getattr(self.backbone, 'layout', None)
        if layout is None or batch_data_samples is None or len(batch_data_samples) == 0:
            return None, None
        if len(batch_data_samples) != batch_inputs.shape[0]:
            raise ValueError(
                f'{type(self).__name__}: {len(batch_data_samples)} data samples for '
                f'a batch of {batch_inputs.shape[0]} images; each image needs its '
                'sample (its missing_modalities and modality_weights)')
        device = batch_inputs.device
        weights = weights_from_data_samples(batch_data_samples, layout,
                                            device) if self.training else None
        return presence_from_data_samples(batch_data_samples, layout, device), weights

    def _streams_and_fused(
            self,
            batch_inputs: torch.Tensor,
            batch_data_samples=None,
            with_losses: bool = False) -> Tuple[Optional[dict], tuple, dict]:
        """The backbone's forward with the batch's modality state, the streams'
        own outputs kept: ``(streams, fused features after the neck, the
        backbone's own losses)``. ``with_losses``: the model's own training
        forward, where a learned substitute gives its losses. A backbone without
        streams (a stock one) is called as mmdet calls it: ``(None, feats, {})``.
        """
        backbone = self.backbone
        presence, weights = self.modality_state(batch_inputs, batch_data_samples)
        if not hasattr(backbone, 'forward_with_streams'):
            return None, self._neck(backbone(batch_inputs)), {}
        outs = backbone.forward_with_streams(
            batch_inputs, presence, weights, with_losses=with_losses)
        return outs.streams, self._neck(outs.fused), outs.losses

    def extract_feat(self, batch_inputs: torch.Tensor, batch_data_samples=None):
        """Features after the neck, with the batch's modality state from its
        data samples (``missing_modalities``; ``modality_weights`` in training).

        Args:
            batch_inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
            batch_data_samples (list, optional): Its data samples or metainfo
                dicts; ``None``: every modality present, weight 1.
        """
        return self._streams_and_fused(batch_inputs, batch_data_samples)[1]

    @property
    def modality_names(self) -> List[str]:
        """The modalities with outputs: the layout's, less the backbone's
        ``ignore_modalities`` (their streams do not exist; their features are
        zeros, so a head on them would learn nothing)."""
        backbone = self.backbone
        return list(getattr(backbone, 'used', backbone.layout.names))

    def _neck(self, feats: tuple) -> tuple:
        return self.neck(feats) if self.with_neck else feats

    def _unimodal_fused(self, streams: Dict[str, tuple], name: str) -> tuple:
        """The backbone's fused features with only modality ``name`` present
        (the others replaced as known-missing), from the streams' outputs."""
        backbone = self.backbone
        names = backbone.layout.names
        first = next(iter(streams.values()))[0]
        only = torch.zeros(
            first.shape[0], len(names), dtype=torch.bool, device=first.device)
        only[:, names.index(name)] = True
        return backbone.fuse(backbone.replace_missing(streams, only), only)

    def _view(self, streams: dict, name: str) -> tuple:
        """Modality ``name``'s unimodal view after the neck, with gradient."""
        return self._neck(self._unimodal_fused(streams, name))

    def _aux_features(self, streams: dict, name: str) -> tuple:
        """What modality ``name``'s auxiliary head reads (``aux_input``): its
        unimodal view (with gradient), or its stream's own features, after the
        neck."""
        if self.aux_input == 'view':
            return self._view(streams, name)
        return self._neck(streams[name])

    def _views(self, streams: dict) -> Dict[str, tuple]:
        """Each used modality's unimodal view after the neck, without gradient:
        the fusion's output with only that modality present (the others replaced
        as known-missing), the model's own missing-modality view, in the model's
        current mode; norm running statistics are not updated."""
        with torch.no_grad(), view_mode(self):
            return {name: self._view(streams, name) for name in self.modality_names}

    def _add_aux_losses(self,
                        losses: dict,
                        aux: dict,
                        name: str,
                        prefix: str = '') -> None:
        """``aux``'s entries as ``<prefix><key>_<modality>``, the losses times
        lambda: the ``_<modality>`` suffix is what
        :class:`mwam_mm.engine.MWAMHook`'s ``'loss'`` mode looks for."""
        weight = self.aux_loss_weight
        for key, value in aux.items():
            if 'loss' in key:
                value = [v * weight
                         for v in value] if isinstance(value,
                                                       (list,
                                                        tuple)) else value * weight
            losses[f'{prefix}{key}_{name}'] = value

    @staticmethod
    def _score_entries(name: str, probs: torch.Tensor) -> dict:
        """``modality_score_<m>`` (sum of the ground-truth class probabilities of
        the scoring units) and ``modality_count_<m>`` (float: mmengine logs every
        entry by its mean)."""
        probs = probs.detach().float()
        return {
            f'modality_score_{name}': probs.sum(),
            f'modality_count_{name}': probs.new_tensor(float(probs.numel())),
        }

    def _add_extra_losses(self, losses: dict, extra: dict) -> dict:
        """``losses`` with the backbone's extra losses added, none renamed."""
        for key, value in extra.items():
            if key in losses:
                raise KeyError(
                    f'{type(self).__name__}: the backbone\'s extra loss {key!r} has '
                    'the name of one of the model\'s own losses; rename it in the '
                    'module that computes it')
            losses[key] = value
        return losses

    @torch.no_grad()
    def modality_predictions(self,
                             batch_inputs: torch.Tensor,
                             batch_data_samples,
                             source: str = 'view',
                             top_k: int = 100) -> Dict[str, List[torch.Tensor]]:
        """Class probabilities per image of the same scoring units for the fused
        prediction and each modality's unimodal one.

        Args:
            batch_inputs (Tensor): The preprocessed batch.
            batch_data_samples (list): Its data samples (ground truth used by
                segmentors to pick the labelled pixels).
            source (str): ``'aux'`` or ``'view'``.
            top_k (int): Detection: the ``top_k`` units (anchors or proposals)
                with the highest fused confidence; segmentation: at most that
                many labelled pixels, evenly subsampled.

        Returns:
            dict[str, list[Tensor]]: ``{'fused': [...], '<modality>': [...]}``,
            one ``(K_i, C)`` tensor per image (rows sum to 1: a background or
            "no object" column is included for sigmoid heads).
        """
        raise NotImplementedError

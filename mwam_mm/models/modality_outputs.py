"""Per-modality predictions: what OGM-GE, RSC-MD and BTW need from a model.

A model that offers them mixes in :class:`ModalityOutputsMixin` (our RGB-T
detectors and segmentors do). Each modality's *unimodal prediction* comes from one
of two sources:

- ``'aux'``: the model's auxiliary head for that modality (RSC's heads), fed by the
  modality's own stream features; it exists only when the model was built with
  auxiliary heads (``aux_loss_weight > 0``);
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

- ``modality_scores_source``: ``None`` (default: nothing extra), or ``'aux'`` /
  ``'view'``. While set, ``loss()`` adds, for every modality ``m``, a detached
  0-dim tensor ``modality_score_<m>`` and a detached 0-dim tensor
  ``modality_count_<m>`` to the returned dict: the *sum* over the batch's scoring
  units (RetinaNet-type heads: the positive anchors; Faster R-CNN: the RoI head's
  sampled RoIs with their labels, background included; segmentation: the labelled
  pixels) of the unimodal probability of the ground-truth class, and the number
  of units, so that a hook can all-reduce both and take the mean. The keys
  contain no ``'loss'``: mmengine only logs them.
- :meth:`modality_predictions` (inference mode, no gradient): per image and per
  source (``'fused'`` and each modality), the class probabilities of the same
  scoring units, for BTW's per-image KL divergence.
- :meth:`has_modality_heads`: whether auxiliary heads exist.
"""
from typing import Dict, List, Optional

import torch

SOURCES = ('aux', 'view')


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
    """Mixed into RGB-T detectors and segmentors: see the module docstring."""

    modality_scores_source: Optional[str] = None

    def has_modality_heads(self) -> bool:
        raise NotImplementedError

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

    def _pop_extra_losses(self) -> dict:
        """The backbone's own losses of the last training forward (cleared)."""
        pop = getattr(self.backbone, 'pop_extra_losses', None)
        return dict(pop()) if pop is not None else {}

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

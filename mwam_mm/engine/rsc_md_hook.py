"""RSCMDHook: RSC-MD's modality decoupling (Shao & Shi), our adaptation."""
import math
from typing import Dict, Optional

from mmengine.registry import HOOKS

from ..models.modality_outputs import ModalityOutputsMixin
from .balancing_hook import ModalityBalancingHook, training_epoch, unwrap


@HOOKS.register_module()
class RSCMDHook(ModalityBalancingHook):
    """Modality decoupling (MD) of RSC-MD, on a model trained with RSC's
    auxiliary per-modality heads.

    RSC (the representation space constraint) is the model's part: one auxiliary
    detection or segmentation head per modality on that modality's own stream
    features, their losses added (``aux_loss_weight > 0`` on
    ``RGBTSingleStageDetector``, ``RGBTTwoStageDetector``, ``RGBTEncoderDecoder``).
    MD is this hook: it sets the backbone's fused gradient scale
    (``backbone.set_fused_grad_scale``), the factor on the gradient that flows from
    the fusion back into the streams, to 1 for the warm-up and to ``beta`` from its
    end (called when the value changes: at the start of training and when the
    warm-up ends). With ``beta = 0`` (default: stop-gradient) each stream learns
    only from its own auxiliary loss, while the fusion, neck and head still learn
    from the fused loss; ``0 < beta < 1`` keeps that share of the fused gradient.
    The paper gives no details of MD: this is the project's adaptation (see
    ``docs/balancing-methods.md``).

    The backbone applies the scale in training mode only, so validation and
    test never see it; after training it is 1 again, and the hook adds nothing
    to the checkpoint (a resumed run finds its phase from the iteration).
    Logged every iteration: ``train/rsc_md_beta`` (the scale used) and
    ``train/grad_norm_<m>``.

    Args:
        beta (float): Scale of the fused gradient into the streams after the
            warm-up, in [0, 1]. Default 0.0.
        warmup_epochs (int, optional): Epochs with scale 1 first. Default: 1
            (when ``warmup_iters`` is not given). With an iteration-based loop
            an epoch is a pass over the training dataloader.
        warmup_iters (int, optional): The warm-up in iterations instead.
        branches (dict, optional): ``{modality: module path}`` whose gradient
            norms are logged; default: the backbone's ``modality_branches()``.
        log_grad_norm (bool): Log ``grad_norm_<m>``. Default True.
        modalities (list[dict], optional): The modality layout, for a model
            whose backbone has none.
    """

    def __init__(self,
                 beta: float = 0.0,
                 warmup_epochs: Optional[int] = None,
                 warmup_iters: Optional[int] = None,
                 branches: Optional[Dict[str, str]] = None,
                 log_grad_norm: bool = True,
                 modalities=None):
        super().__init__(branches, log_grad_norm, modalities)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) \
                or not math.isfinite(beta) or not 0.0 <= beta <= 1.0:
            raise ValueError(
                f'RSCMDHook: beta must be in [0, 1] (0: stop-gradient from the '
                f'fusion into the streams, 1: no decoupling), got {beta!r}')
        if warmup_epochs is not None and warmup_iters is not None:
            raise ValueError(
                f'RSCMDHook: give warmup_epochs ({warmup_epochs!r}) or warmup_iters '
                f'({warmup_iters!r}), not both')
        for key, value in (('warmup_epochs', warmup_epochs), ('warmup_iters',
                                                              warmup_iters)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int) or value < 0):
                raise ValueError(f'RSCMDHook: {key} must be an integer >= 0, got '
                                 f'{value!r}')
        self.beta = float(beta)
        if warmup_iters is None and warmup_epochs is None:
            warmup_epochs = 1
        self.warmup_epochs = warmup_epochs
        self.warmup_iters = warmup_iters
        self.scale = 1.0
        self._backbone = None

    def setup(self, runner) -> None:
        model = unwrap(runner.model)
        if not (isinstance(model, ModalityOutputsMixin) and model.has_modality_heads()):
            raise ValueError(
                'RSCMDHook: modality decoupling needs auxiliary per-modality heads '
                "(RSC), so that each stream still learns from its own loss; "
                f'{type(model).__name__} has none: set the model\'s aux_loss_weight '
                '> 0 (RGBTSingleStageDetector, RGBTTwoStageDetector or '
                'RGBTEncoderDecoder)')
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'set_fused_grad_scale'):
            raise ValueError(
                'RSCMDHook: the backbone '
                f'{type(backbone).__name__ if backbone is not None else "(none)"} '
                'has no set_fused_grad_scale, the factor on the fused gradient into '
                "the streams; use type='DualStreamBackbone'")
        self._backbone = backbone

    def in_warmup(self, runner) -> bool:
        """Whether the current training iteration is in the warm-up."""
        if self.warmup_iters is not None:
            return runner.iter < self.warmup_iters
        return training_epoch(runner) < self.warmup_epochs

    def _set_scale(self, scale: float) -> None:
        self.scale = scale
        self._backbone.set_fused_grad_scale(scale)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._set_scale(1.0 if self.in_warmup(runner) else self.beta)

    def _follow_warmup(self, runner) -> None:
        scale = 1.0 if self.in_warmup(runner) else self.beta
        if scale != self.scale:  # the warm-up has ended
            self._set_scale(scale)

    def before_train_epoch(self, runner) -> None:
        self._follow_warmup(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        super().before_train_iter(runner, batch_idx, data_batch)
        # a no-op unless a warm-up in iterations (or an epoch of an
        # iteration-based loop) ends right here
        self._follow_warmup(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        runner.message_hub.update_scalar('train/rsc_md_beta', self.scale)

    def after_train(self, runner) -> None:
        super().after_train(runner)
        if self._backbone is not None:
            self._set_scale(1.0)

"""BranchWeightHook: a fixed weight per modality branch (a per-branch learning-rate
cut), the control that separates MWAM's FRM dynamics from its mean weights."""
import math
from typing import Dict, Optional

from mmengine.registry import HOOKS

from .balancing_hook import ModalityBalancingHook
from .modulation import BranchModulation, GradientModulation


@HOOKS.register_module()
class BranchWeightHook(ModalityBalancingHook):
    """Multiply every parameter gradient of each modality branch by a constant.

    With plain SGD this is a learning-rate cut (or raise) of that branch alone.
    It is the analysis control of MWAM: MWAM's weights ``K_m`` change every
    iteration with FRM; this hook applies a fixed ``K_m`` (e.g. MWAM's logged
    mean), so a comparison tells what FRM's dynamics add to the mean scaling.
    Applied as :class:`MWAMHook`'s ``apply='grad'`` (the same
    :class:`~mwam_mm.engine.modulation.GradientModulation`), during training
    iterations only; logs ``train/branch_k_<m>`` and ``train/grad_norm_<m>``.

    Args:
        weights (dict[str, float]): ``{modality: weight}``, one finite weight
            > 0 per branch.
        branches (dict, optional): ``{modality: module path}``; default: the
            backbone's ``modality_branches()``.
        log_grad_norm (bool): Log ``grad_norm_<m>``. Default True.
        modalities (list[dict], optional): The modality layout, for a model
            whose backbone has none.
    """

    def __init__(self,
                 weights: Dict[str, float],
                 branches: Optional[Dict[str, str]] = None,
                 log_grad_norm: bool = True,
                 modalities=None):
        super().__init__(branches, log_grad_norm, modalities)
        if not isinstance(weights, dict) or not weights:
            raise ValueError('BranchWeightHook: weights must be a dict {modality: '
                             f'weight}}, got {weights!r}')
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value <= 0:
                raise ValueError(f'BranchWeightHook: the weight of {name!r} must be a '
                                 f'finite number > 0, got {value!r}')
        self.weights = {n: float(v) for n, v in weights.items()}

    def setup(self, runner) -> None:
        if set(self.weights) != set(self.branches):
            raise ValueError(
                f'BranchWeightHook: weights are given for {sorted(self.weights)}, '
                f'the model\'s branches are {sorted(self.branches)}: give one weight '
                'per branch')

    def build_modulations(self, runner) -> Dict[str, BranchModulation]:
        return dict(grad=GradientModulation(self.branches, self.weights.get))

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        for name, k in self.weights.items():
            runner.message_hub.update_scalar(f'train/branch_k_{name}', k)

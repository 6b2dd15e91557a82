from .balancing_hook import BranchGradNormHook, ModalityBalancingHook, resolve_branches
from .modulation import (BranchGradientNorms, BranchModulation, GradientModulation,
                         LossModulation, UpdateModulation)
from .mwam_hook import MWAMHook
from .runner_utils import (add_runner_arguments, build_runner, explain_registry_errors,
                           load_config, parse_runner_arguments,
                           setup_distributed_on_cpu)

__all__ = [
    'BranchGradNormHook', 'BranchGradientNorms', 'BranchModulation',
    'GradientModulation', 'LossModulation', 'MWAMHook', 'ModalityBalancingHook',
    'UpdateModulation', 'add_runner_arguments', 'build_runner',
    'explain_registry_errors', 'load_config', 'parse_runner_arguments',
    'resolve_branches', 'setup_distributed_on_cpu'
]

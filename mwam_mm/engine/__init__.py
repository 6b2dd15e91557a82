from .balancing_hook import BranchGradNormHook, ModalityBalancingHook, resolve_branches
from .branch_weight_hook import BranchWeightHook
from .btw_hook import BTWHook
from .cpu_amp import CPUAmpOptimWrapper, configure_amp
from .modulation import (BranchGradientNorms, BranchModulation, GradientModulation,
                         LossModulation, ParameterGradientModulation, UpdateModulation)
from .mwam_hook import MWAMHook
from .ogm_ge_hook import OGMGEHook
from .rsc_md_hook import RSCMDHook
from .runner_utils import (add_runner_arguments, build_runner, explain_registry_errors,
                           load_config, parse_runner_arguments,
                           setup_distributed_on_cpu)

__all__ = [
    'BTWHook', 'BranchGradNormHook', 'BranchWeightHook', 'BranchGradientNorms',
    'BranchModulation', 'CPUAmpOptimWrapper', 'GradientModulation', 'LossModulation',
    'MWAMHook', 'ModalityBalancingHook', 'OGMGEHook', 'ParameterGradientModulation',
    'RSCMDHook', 'UpdateModulation', 'add_runner_arguments', 'build_runner',
    'configure_amp', 'explain_registry_errors', 'load_config', 'parse_runner_arguments',
    'resolve_branches', 'setup_distributed_on_cpu'
]

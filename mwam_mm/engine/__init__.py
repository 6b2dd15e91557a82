from .mwam_hook import MWAMHook
from .runner_utils import (build_runner, explain_registry_errors, load_config,
                           setup_distributed_on_cpu)

__all__ = [
    'MWAMHook', 'build_runner', 'explain_registry_errors', 'load_config',
    'setup_distributed_on_cpu'
]

from .mwam_hook import MWAMHook
from .runner_utils import (add_runner_arguments, build_runner,
                           explain_registry_errors, load_config,
                           parse_runner_arguments, setup_distributed_on_cpu)

__all__ = [
    'MWAMHook', 'add_runner_arguments', 'parse_runner_arguments', 'build_runner', 'explain_registry_errors', 'load_config',
    'setup_distributed_on_cpu'
]

"""OGMGEHook (stub: to be written)."""
from mmengine.registry import HOOKS

from .balancing_hook import ModalityBalancingHook


@HOOKS.register_module()
class OGMGEHook(ModalityBalancingHook):
    """Placeholder."""

"""CMPT-style cross-modal proxies (stub: to be written)."""
from mmengine.model import BaseModule
from mmengine.registry import MODELS


@MODELS.register_module()
class CrossModalProxy(BaseModule):
    """Placeholder."""

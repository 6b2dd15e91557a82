"""Low-rank adapters on frozen streams (stub: to be written)."""
from mmengine.model import BaseModule
from mmengine.registry import MODELS


@MODELS.register_module()
class LowRankAdapter(BaseModule):
    """Placeholder."""

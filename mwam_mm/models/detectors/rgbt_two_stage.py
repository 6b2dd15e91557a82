"""Two-stage detector with auxiliary per-modality heads (stub: to be written)."""
from mmdet.models.detectors import TwoStageDetector
from mmengine.registry import MODELS

from ..modality_outputs import ModalityOutputsMixin


@MODELS.register_module()
class RGBTTwoStageDetector(ModalityOutputsMixin, TwoStageDetector):
    """Placeholder."""

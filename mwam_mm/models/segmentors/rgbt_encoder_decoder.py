"""EncoderDecoder with auxiliary per-modality decode heads (stub: to be written)."""
from mmengine.registry import MODELS
from mmseg.models.segmentors import EncoderDecoder

from ..modality_outputs import ModalityOutputsMixin


@MODELS.register_module()
class RGBTEncoderDecoder(ModalityOutputsMixin, EncoderDecoder):
    """Placeholder."""

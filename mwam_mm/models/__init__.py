from .adapters import LowRankAdapter
from .backbones import DualStreamBackbone
from .data_preprocessors import (RGBTDetDataPreprocessor, RGBTPreprocessorMixin,
                                 RGBTSegDataPreprocessor)
from .detectors import RGBTSingleStageDetector, RGBTTwoStageDetector
from .fusions import AddFusion, ConcatConvFusion, GatedFusion
from .grad_scale import scale_gradient
from .modality_outputs import ModalityOutputsMixin, check_source
from .proxies import CrossModalProxy
from .segmentors import RGBTEncoderDecoder
from .substitutes import ZeroSubstitute

__all__ = [
    'DualStreamBackbone', 'RGBTDetDataPreprocessor', 'RGBTPreprocessorMixin',
    'RGBTSegDataPreprocessor', 'AddFusion', 'ConcatConvFusion', 'GatedFusion',
    'RGBTSingleStageDetector', 'RGBTTwoStageDetector', 'RGBTEncoderDecoder',
    'ZeroSubstitute', 'CrossModalProxy', 'LowRankAdapter', 'ModalityOutputsMixin',
    'check_source', 'scale_gradient'
]

from .backbones import DualStreamBackbone
from .data_preprocessors import (RGBTDetDataPreprocessor, RGBTPreprocessorMixin,
                                 RGBTSegDataPreprocessor)
from .detectors import RGBTSingleStageDetector
from .fusions import AddFusion, ConcatConvFusion, GatedFusion
from .substitutes import ZeroSubstitute

__all__ = [
    'DualStreamBackbone', 'RGBTDetDataPreprocessor', 'RGBTPreprocessorMixin',
    'RGBTSegDataPreprocessor', 'AddFusion', 'ConcatConvFusion', 'GatedFusion',
    'RGBTSingleStageDetector', 'ZeroSubstitute'
]

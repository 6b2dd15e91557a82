from .backbones import DualStreamBackbone
from .data_preprocessors import RGBTDetDataPreprocessor, RGBTPreprocessorMixin
from .fusions import AddFusion, ConcatConvFusion, GatedFusion

__all__ = [
    'DualStreamBackbone', 'RGBTDetDataPreprocessor', 'RGBTPreprocessorMixin',
    'AddFusion', 'ConcatConvFusion', 'GatedFusion'
]

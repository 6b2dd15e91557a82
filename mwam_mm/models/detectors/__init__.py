from .rgbt_single_stage import RGBTSingleStageDetector
from .rgbt_two_stage import RGBTTwoStageDetector

__all__ = ['RGBTSingleStageDetector', 'RGBTTwoStageDetector']

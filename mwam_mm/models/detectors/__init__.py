from .rgbt_single_stage import RGBTSingleStageDetector

__all__ = ['RGBTSingleStageDetector']

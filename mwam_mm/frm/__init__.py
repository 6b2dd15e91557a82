from .frequency_ratio import (FRM_MODES, FrequencyRatioMetric, dct_bands,
                              frequency_ratio_metric)
from .weighting import MWAM_PRESETS, MWAMWeighting

__all__ = [
    'FRM_MODES', 'FrequencyRatioMetric', 'dct_bands', 'frequency_ratio_metric',
    'MWAM_PRESETS', 'MWAMWeighting'
]

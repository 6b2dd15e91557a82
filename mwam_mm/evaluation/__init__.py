from .degradations import (DEGRADATIONS, SEVERITIES, ModalityDegradation,
                           ModalityGaussianBlur, ModalityGaussianNoise,
                           ModalityLowLight, ModalityOverExposure, ModalityShift,
                           degradation_pipeline, degradation_plan, register_degradation,
                           summarize_degradations)
from .kaist_metric import KAISTMissRate
from .robustness import (ALL_SCENARIOS, SCENARIOS, blanking_pipeline, collapse_rate,
                         evaluate_robustness, evaluate_scenarios, evaluate_subsets,
                         subset_name, summarize)
from .robustness_report import bar_chart, markdown_table, write_report
from .splits import SplitMetric, find_day_night_splits
from .statistics import (compare, fraction_of_ceiling, lower_is_better,
                         paired_difference, relative_score, seed_statistics)

# the robustness leaderboard (its variants, runs, report) is an experiment of
# this repository, not part of the library: benchmarks/leaderboard/
__all__ = [
    'DEGRADATIONS', 'SEVERITIES', 'ModalityDegradation', 'ModalityGaussianBlur',
    'ModalityGaussianNoise', 'ModalityLowLight', 'ModalityOverExposure',
    'ModalityShift', 'degradation_pipeline', 'degradation_plan', 'register_degradation',
    'summarize_degradations', 'KAISTMissRate', 'ALL_SCENARIOS', 'SCENARIOS',
    'SplitMetric', 'bar_chart', 'blanking_pipeline', 'collapse_rate',
    'evaluate_robustness', 'evaluate_scenarios', 'evaluate_subsets',
    'find_day_night_splits', 'markdown_table', 'subset_name', 'summarize',
    'write_report', 'compare', 'fraction_of_ceiling', 'paired_difference',
    'seed_statistics', 'lower_is_better', 'relative_score'
]

from .kaist_metric import KAISTMissRate
from .robustness import (SCENARIOS, bar_chart, blanking_pipeline, evaluate_scenarios,
                         evaluate_subsets, markdown_table, subset_name, summarize,
                         write_report)

__all__ = [
    'KAISTMissRate', 'SCENARIOS', 'bar_chart', 'blanking_pipeline',
    'evaluate_scenarios', 'evaluate_subsets', 'markdown_table', 'subset_name',
    'summarize', 'write_report'
]

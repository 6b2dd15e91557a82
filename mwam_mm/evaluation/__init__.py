from .robustness import (bar_chart, blanking_pipeline, evaluate_subsets,
                         markdown_table, subset_name, summarize, write_report)

__all__ = [
    'bar_chart', 'blanking_pipeline', 'evaluate_subsets', 'markdown_table',
    'subset_name', 'summarize', 'write_report'
]

"""The robustness leaderboard's harness: variants, runs, the board and its report.

An experiment of this repository, not part of the ``mwam_mm`` library (it reads
``configs/``, which an installed package does not ship). Used by
``benchmarks/robustness_leaderboard.py``, ``benchmarks/mwam_ablation.py``,
``benchmarks/frm_grid_offset.py`` and ``tools/demo.py``, which put the checkout's
root on ``sys.path`` and import it as ``benchmarks.leaderboard``.

- :mod:`.variants`: the variant table (name -> method overlays of
  ``configs/_base_/methods``, description, ceiling modality) and the variant's
  config (:func:`load_variant`);
- :mod:`.data`: the synthetic data (:func:`ensure_synthetic_data`) and data-root
  options;
- :mod:`.schedule`: training-length edits (:func:`apply_schedule`);
- :mod:`.runs`: one run (:func:`build_run_config`, :func:`run_variant`: train one
  variant with one seed, then test it in every robustness scenario, per split
  and, if asked, under degradations) and the stored setups and results;
- :mod:`.board`: the statistics over seeds (:func:`aggregate`, with
  :mod:`mwam_mm.evaluation.statistics`); :mod:`.report`: the writers
  (:func:`write_leaderboard`); :mod:`.pool`: runs side by side and the progress
  line. The statistics over seeds (:func:`~mwam_mm.evaluation.seed_statistics`,
  the two-standard-error marks of :func:`~mwam_mm.evaluation.compare`) are the
  library's.

Unimodal ceilings (variants ``unimodal-rgb``, ``unimodal-thermal``: the same model
with ``model.backbone.ignore_modalities`` set) use one camera in training and test.
They are tested on their own modality only: a subset without it leaves such a
model no input, and the other camera is ignored either way, so ``blank`` and
``missing`` are the same run: it is run once and its score is given for both
scenarios. A single-camera score's fraction of its ceiling is the ratio of the
two means over seeds.
"""
from .board import aggregate, curve_board
from .data import (SYNTHETIC_DEFAULTS, SYNTHETIC_READERS, SYNTHETIC_ROOTS,
                   data_root_options, default_synthetic_root, ensure_synthetic_data,
                   is_synthetic_config, synthetic_meta, synthetic_task)
from .pool import TAG, Progress, default_jobs, format_duration, run_jobs
from .report import (curve_lines, format_fraction, format_paired, format_stats,
                     leaderboard_chart, leaderboard_markdown, write_leaderboard)
from .runs import (CURVE_STEP_KEY, HISTORY_PREFIXES, RESULT_FILE, SETUP_FILE,
                   SETUP_KEYS, CurveStepHook, RunOptions, build_run_config,
                   curve_points, final_checkpoint, load_result, repo_relative,
                   run_variant, save_result, set_stream_checkpoints, stored_status,
                   stream_weights_digest, subset_names, training_curve, training_setup)
from .schedule import apply_schedule, hook_within_iters, set_test_scale
from .variants import (ANALYSIS_VARIANTS, BASELINE, CEILINGS, METHOD_MODEL_KEY,
                       METHODS_DIR, ROOT, SYNTHETIC_CONFIG, SYNTHETIC_SEG_CONFIG,
                       VARIANTS, Variant, apply_overlays, apply_variant,
                       ceiling_modality, check_variants, existing_config, expected_cost,
                       load_variant, overlay_delta, overlay_path, stream_sources,
                       variant_name)

__all__ = [
    'ANALYSIS_VARIANTS', 'BASELINE', 'CEILINGS', 'CURVE_STEP_KEY', 'CurveStepHook',
    'HISTORY_PREFIXES', 'METHODS_DIR', 'METHOD_MODEL_KEY', 'RESULT_FILE', 'ROOT',
    'SETUP_FILE', 'SETUP_KEYS', 'SYNTHETIC_CONFIG', 'SYNTHETIC_SEG_CONFIG',
    'SYNTHETIC_DEFAULTS', 'SYNTHETIC_READERS', 'SYNTHETIC_ROOTS', 'TAG', 'VARIANTS',
    'Progress', 'RunOptions', 'Variant', 'aggregate', 'curve_board', 'curve_lines',
    'curve_points', 'format_fraction', 'training_curve', 'final_checkpoint',
    'set_stream_checkpoints', 'stream_sources', 'apply_overlays', 'apply_schedule',
    'apply_variant', 'build_run_config', 'ceiling_modality', 'check_variants',
    'data_root_options', 'default_jobs', 'default_synthetic_root',
    'ensure_synthetic_data', 'existing_config', 'expected_cost', 'format_duration',
    'format_paired', 'format_stats', 'hook_within_iters', 'is_synthetic_config',
    'leaderboard_chart', 'leaderboard_markdown', 'load_result', 'load_variant',
    'overlay_delta', 'overlay_path', 'repo_relative', 'run_jobs', 'run_variant',
    'save_result', 'set_test_scale', 'stored_status', 'stream_weights_digest',
    'subset_names', 'synthetic_meta', 'synthetic_task', 'training_setup',
    'variant_name', 'write_leaderboard'
]

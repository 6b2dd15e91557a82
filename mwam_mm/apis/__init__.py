"""Inference on RGB-T pairs (see :mod:`mwam_mm.apis.inference`)."""
from .inference import (build_rgbt_visualizer, check_checkpoint_layout,
                        inference_multimodal, inference_pipeline, inference_rgbt,
                        init_rgbt_model, prediction_to_dict)

__all__ = [
    'init_rgbt_model', 'inference_rgbt', 'inference_multimodal', 'inference_pipeline',
    'build_rgbt_visualizer', 'check_checkpoint_layout', 'prediction_to_dict'
]

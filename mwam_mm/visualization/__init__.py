"""Visualisers and visualisation hooks for stacked RGB-T images."""
from .rgbt_visualizer import (RGBTDetLocalVisualizer, RGBTDetVisualizationHook,
                              RGBTSegLocalVisualizer, RGBTSegVisualizationHook,
                              RGBTVisualizerMixin, blend_views,
                              enable_test_visualization, load_sample_image,
                              modality_views)

__all__ = [
    'RGBTDetLocalVisualizer', 'RGBTSegLocalVisualizer', 'RGBTDetVisualizationHook',
    'RGBTSegVisualizationHook', 'RGBTVisualizerMixin', 'modality_views', 'blend_views',
    'load_sample_image', 'enable_test_visualization'
]

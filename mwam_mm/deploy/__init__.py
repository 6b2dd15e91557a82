"""Deployment: ONNX export of the RGB-T models and an ONNX Runtime backend.

Needs the ``deploy`` extra (``pip install -e .[deploy]``: onnx, onnxruntime,
onnxscript); ``import mwam_mm`` does not import this package.
"""
try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import onnxscript  # noqa: F401
except ImportError as error:  # the deploy extra is optional
    raise ImportError(
        f'mwam_mm.deploy needs the deploy extra ({error}): '
        'pip install -e .[deploy] (onnx, onnxruntime, onnxscript)') from error

from .detection import SingleStageDetectionGraph, detection_graph  # noqa: E402
from .export import build_graph, export_onnx, meta_path
from .features import ExportError, fused_features
from .onnxruntime_model import ONNXRuntimeRGBTModel, load_meta
from .segmentation import SegmentationGraph
from .two_stage import TwoStageDetectionGraph

__all__ = [
    'ExportError', 'ONNXRuntimeRGBTModel', 'SegmentationGraph',
    'SingleStageDetectionGraph', 'TwoStageDetectionGraph', 'build_graph',
    'detection_graph', 'export_onnx', 'fused_features', 'load_meta', 'meta_path'
]

"""Export an RGB-T model to ONNX, with a description of what the graph needs.

``export_onnx(model, 'model.onnx')`` writes ``model.onnx`` and ``model.json``.
The graph (:func:`build_graph`) starts after the config's data preprocessor: its
``image`` input is the preprocessed batch (resized, stacked in layout order,
normalised, padded). The JSON says how to get there from a camera pair (the
test pipeline's resize, per-channel mean/std and order, padding), what each
input and output is, and holds the config, so that
:class:`~mwam_mm.deploy.ONNXRuntimeRGBTModel` runs the graph behind the usual
inference API.

torch's ``torch.export``-based exporter (``dynamo=True``) is used: mmdeploy 1.3.1
(the last release) drives the older TorchScript exporter, which torch 2.9+ no
longer uses by default, and pins ``protobuf<=3.20.2``; see ``docs/deploy.md``.
"""
import contextlib
import copy
import dataclasses
import io
import json
import logging
import os
import os.path as osp
import traceback
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from ..apis.inference import _dataset_cfg, model_layout, task_scope
from .detection import detection_graph
from .features import ExportError
from .ops import ONNX_TRANSLATIONS
from .segmentation import SegmentationGraph

META_FORMAT = 'mwam_mm-onnx'
META_VERSION = 1
OPSET = 18


def build_graph(model,
                with_presence: bool = True,
                with_logits: bool = False) -> nn.Module:
    """The export module of an RGB-T detector or segmentor (eval mode)."""
    scope = task_scope(model.cfg)
    if scope == 'mmdet':
        if with_logits:
            raise ExportError('with_logits (--with-logits) is for segmentors; a '
                              "detector's outputs are boxes, scores and labels")
        graph = detection_graph(model, with_presence)
    else:
        graph = SegmentationGraph(model, with_presence, with_logits)
    return graph.eval()


def _test_resize(cfg) -> Optional[Tuple[int, int]]:
    """``(height, width)`` the test pipeline resizes to, if it has one fixed
    scale (mmcv's ``scale`` is ``(width, height)``)."""
    for step in _dataset_cfg(cfg).pipeline:
        if str(step.get('type', '')).split('.')[-1] == 'Resize':
            scale = step.get('scale')
            if isinstance(scale, (list, tuple)) and len(scale) == 2:
                return int(scale[1]), int(scale[0])
    return None


def preprocessed_shape(model, height: int, width: int) -> Tuple[int, int]:
    """The network input size the data preprocessor gives for an image of
    ``height x width`` (after its padding)."""
    layout = model_layout(model)
    sample = data_sample(model, height, width)
    data = dict(
        inputs=[torch.zeros(layout.num_channels, height, width, dtype=torch.uint8)],
        data_samples=[sample])
    with torch.no_grad():
        out = model.data_preprocessor(data, False)
    return tuple(int(v) for v in out['inputs'].shape[-2:])


def data_sample(model, height: int, width: int):
    """An empty data sample of the model's task for a ``height x width`` image
    that the test pipeline left as it was (scale factor 1)."""
    meta = dict(
        img_shape=(height, width), ori_shape=(height, width), scale_factor=(1.0, 1.0))
    if task_scope(model.cfg) == 'mmdet':
        from mmdet.structures import DetDataSample
        return DetDataSample(metainfo=meta)
    from mmseg.structures import SegDataSample
    return SegDataSample(metainfo=meta)


def input_shape(model, shape: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """The graph's ``(height, width)``: ``shape`` (checked against the data
    preprocessor's padding), else the test pipeline's resize scale, padded."""
    if shape is not None:
        if len(shape) != 2 or any(int(v) < 1 for v in shape):
            raise ValueError(f'shape must be (height, width), positive, got {shape}')
        height, width = int(shape[0]), int(shape[1])
        padded = preprocessed_shape(model, height, width)
        if padded != (height, width):
            raise ValueError(
                f'shape {height}x{width}: the data preprocessor pads such an image to '
                f'{padded[0]}x{padded[1]} (its size divisor); give a shape it keeps, '
                f'e.g. {padded[0]} {padded[1]}')
        return height, width
    resized = _test_resize(model.cfg)
    if resized is None:
        raise ValueError("the config's test pipeline has no Resize with a fixed "
                         'scale; give the input size (--shape H W)')
    return preprocessed_shape(model, *resized)


def example_inputs(input_names: Sequence[str], layout, height: int, width: int,
                   batch: int) -> tuple:
    """Inputs to trace with (and to check ONNX Runtime on): normal noise as a
    normalised image, and a presence mask with one camera missing in the first
    sample."""
    generator = torch.Generator().manual_seed(0)
    inputs = dict(
        image=torch.randn(
            batch, layout.num_channels, height, width, generator=generator),
        image_shape=torch.tensor([[height, width]] * batch, dtype=torch.int64),
        scale_factor=torch.ones(batch, 2, dtype=torch.float32),
        presence=torch.ones(batch, len(layout), dtype=torch.bool))
    if len(layout) > 1:
        inputs['presence'][0, -1] = False
    return tuple(inputs[name] for name in input_names)


def _failing_module(error: BaseException, graph: nn.Module) -> Optional[str]:
    """The innermost module of ``graph`` whose ``forward`` was running when
    ``error`` was raised (tracing runs the Python code)."""
    paths = {id(m): name for name, m in graph.named_modules()}
    found = None
    for frame, _ in traceback.walk_tb(error.__traceback__):
        module = frame.f_locals.get('self')
        if isinstance(module, nn.Module) and id(module) in paths and \
                frame.f_code.co_name == 'forward':
            found = module
    if found is None:
        return None
    return f'{_model_path(paths[id(found)])} ({type(found).__name__})'


def _model_path(name: str) -> str:
    """A module's name in the model (the graph holds the model as ``model``)."""
    name = name[len('model.'):] if name.startswith('model.') else name
    return name if name not in ('', 'model') else '(the model itself)'


def _modules_of_failed_op(program, message: str) -> List[str]:
    """The modules (from the exported program's ``nn_module_stack``) of the
    operators that ``message`` names."""
    found = []
    for node in program.graph.nodes:
        if node.op != 'call_function':
            continue
        target = str(node.target)
        names = {target, target.split('.')[0], getattr(node.target, '__name__', '')}
        if not any(n and n in message for n in names):
            continue
        stack = node.meta.get('nn_module_stack') or {}
        if stack:
            path, kind = list(stack.values())[-1]
            kind = getattr(kind, '__name__', str(kind)).split('.')[-1]
            found.append(f'{_model_path(path.replace("L__self___", ""))} ({kind})')
    return list(dict.fromkeys(found))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


ADVICE = ('Replace it with layers made of standard PyTorch operators, or give its '
          'operator an ONNX translation (torch.library custom op plus an entry in '
          'mwam_mm.deploy.ops.ONNX_TRANSLATIONS)')


def _export_error(what: str, error: BaseException) -> ExportError:
    return ExportError(f'{what}: {type(error).__name__}: {_first_line(error)}. '
                       f'{ADVICE}')


def trace_program(graph: nn.Module, args: tuple, dynamic_batch: bool):
    """``torch.export`` of the graph; a failure names the module."""
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim('batch', min=1, max=1024)
        dynamic_shapes = tuple({0: batch} for _ in args)
    try:
        return torch.export.export(
            graph, args, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as error:  # any tracing failure: say where
        where = _failing_module(error, graph)
        what = 'the model cannot be traced for ONNX' if where is None else \
            f'the module {where} cannot be exported to ONNX'
        raise _export_error(what, error) from error


def to_onnx(program, args: tuple, out_file: str, input_names: List[str],
            names_out: List[str], opset: int) -> None:
    """The exported program as an ONNX file; a failure names the module."""
    # torch's progress lines and the optimiser's notes ("Skipping constant
    # folding ...") would bury the tool's own output; kept for a failure
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter('ignore')
            torch.onnx.export(
                program,
                args,
                out_file,
                input_names=input_names,
                output_names=names_out,
                custom_translation_table=ONNX_TRANSLATIONS,
                opset_version=opset,
                external_data=False,
                verbose=False)
    except Exception as error:
        print(chatter.getvalue(), end='')
        modules = _modules_of_failed_op(program, str(error))
        where = ('the module ' + ', '.join(modules[:3])) if modules else 'the model'
        raise _export_error(f'{where} cannot be exported to ONNX', error) from error


def describe(model, graph: nn.Module, height: int, width: int, dynamic_batch: bool,
             opset: int) -> dict:
    """The JSON written next to the graph."""
    cfg = model.cfg
    layout = model_layout(model)
    preprocessor = model.data_preprocessor
    scope = task_scope(cfg)
    batch = 'batch' if dynamic_batch else 1
    inputs = dict(
        image=dict(
            shape=[batch, layout.num_channels, height, width],
            dtype='float32',
            meaning='the preprocessed images: resized by the test pipeline, '
            'stacked in layout order, channels reordered as the layout says, '
            'normalised with mean/std, padded with pad_value'),
        image_shape=dict(
            shape=[batch, 2],
            dtype='int64',
            meaning='each image\'s (height, width) after resizing, before padding '
            "(mmdet's img_shape): boxes are clipped to it"),
        scale_factor=dict(
            shape=[batch, 2],
            dtype='float32',
            meaning="(w_scale, h_scale) of the resize (mmdet's scale_factor): "
            'boxes are returned in original pixels'),
        presence=dict(
            shape=[batch, len(layout)],
            dtype='bool',
            meaning=f'True where a camera is present, columns {layout.names}; a '
            'missing camera\'s image is also blanked (fill)'))
    outputs = dict(
        boxes=dict(
            shape=[batch, 'max_per_img', 4],
            meaning='x1, y1, x2, y2 in original pixels, best first'),
        scores=dict(shape=[batch, 'max_per_img'], meaning='0 where empty'),
        labels=dict(shape=[batch, 'max_per_img'], meaning='class, -1 where empty'),
        seg_map=dict(
            shape=[batch, height, width],
            meaning='class per pixel of the padded input; crop to image_shape '
            'and resize (nearest) to the original size'),
        seg_logits=dict(
            shape=[batch, 'classes', height, width],
            meaning='logits resized to the padded input (mmseg crops and resizes '
            'them bilinearly to the original size, then takes the argmax)'))
    names_out = graph.output_names
    return dict(
        format=META_FORMAT,
        version=META_VERSION,
        task='detection' if scope == 'mmdet' else 'segmentation',
        model_type=type(model).__name__,
        opset=opset,
        dynamic_batch=dynamic_batch,
        input_size=[height, width],
        modalities=[dataclasses.asdict(m) for m in layout],
        ignored_modalities=list(model.backbone.ignored),
        inputs={name: inputs[name]
                for name in graph.input_names},
        outputs={name: outputs[name]
                 for name in names_out},
        preprocessing=dict(
            test_pipeline=copy.deepcopy(_dataset_cfg(cfg).pipeline),
            **normalisation(preprocessor, layout),
            pad_size_divisor=getattr(preprocessor, 'pad_size_divisor', None)
            or getattr(preprocessor, 'size_divisor', None),
            pad_value=getattr(preprocessor, 'pad_value',
                              getattr(preprocessor, 'pad_val', 0)),
            note='channel_order indexes the stacked image as loaded (layout '
            'order, RGB stored BGR); mean/std apply after reordering'),
        postprocessing=_test_cfg(model),
        test_cfg=_plain(cfg.model.get('test_cfg') or {}),
        classes=list((model.dataset_meta or {}).get('classes') or []),
        palette=(model.dataset_meta or {}).get('palette'),
        config=cfg.pretty_text)


def normalisation(preprocessor, layout) -> dict:
    """The RGB-T data preprocessor's ``channel_order``, ``mean`` and ``std``,
    each float32 value as its shortest decimal (123.675, not 123.67500305)."""
    return dict(
        channel_order=list(
            getattr(preprocessor, '_channel_order', None)
            or range(layout.num_channels)),
        mean=[float(str(v)) for v in preprocessor.mean.view(-1).numpy()],
        std=[float(str(v)) for v in preprocessor.std.view(-1).numpy()])


def _test_cfg(model) -> dict:
    if hasattr(model, 'bbox_head'):
        return _plain(model.bbox_head.test_cfg)
    if hasattr(model, 'roi_head'):
        return dict(
            rpn=_plain(model.rpn_head.test_cfg), rcnn=_plain(model.roi_head.test_cfg))
    head = model.decode_head
    return dict(
        _plain(model.test_cfg or {}),
        align_corners=bool(head.align_corners),
        threshold=float(0.3 if getattr(head, 'threshold', None) is
                        None else head.threshold))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def meta_path(onnx_file: str) -> str:
    """The JSON next to an ONNX file: ``model.onnx`` -> ``model.json``."""
    return osp.splitext(onnx_file)[0] + '.json'


def compare_outputs(expected: Sequence[torch.Tensor], got: Sequence[np.ndarray],
                    names: Sequence[str]) -> Dict[str, float]:
    """Per output: the largest absolute difference (float outputs) or the
    number of differing entries (integer outputs)."""
    report = {}
    for name, want, have in zip(names, expected, got):
        want = want.detach().cpu().numpy()
        if np.issubdtype(want.dtype, np.floating):
            report[name] = float(np.abs(want - have).max()) if want.size else 0.0
        else:
            report[name] = int((want != have).sum())
    return report


def export_onnx(model,
                out_file: str,
                shape: Optional[Sequence[int]] = None,
                dynamic_batch: bool = False,
                with_presence: bool = True,
                with_logits: bool = False,
                opset: int = OPSET,
                verify: bool = True) -> dict:
    """Export ``model`` (from :func:`mwam_mm.apis.init_rgbt_model`) to ONNX.

    Args:
        model: The RGB-T detector or segmentor, with ``model.cfg``.
        out_file (str): The ``.onnx`` file; the JSON goes next to it
            (:func:`meta_path`).
        shape (tuple[int, int], optional): The network input ``(height, width)``
            (after resize and padding). Default: the test pipeline's resize scale,
            padded as the data preprocessor pads.
        dynamic_batch (bool): A dynamic batch dimension (else batch 1).
        with_presence (bool): A ``presence`` input (``(B, M)`` bool).
        with_logits (bool): Segmentation: also output ``seg_logits``.
        opset (int): ONNX opset (>= 16 for RoiAlign's half-pixel mode).
        verify (bool): Run the file in ONNX Runtime on the example input and
            compare with PyTorch (``report['verify']``).

    Returns:
        dict: The JSON description, plus ``verify`` when asked.
    """
    if opset < 16:
        raise ValueError(f'opset {opset}: the export needs opset 16 or newer')
    layout = model_layout(model)
    if layout is None:
        raise ExportError(f'{type(model).__name__} has no DualStreamBackbone; the '
                          'RGB-T export needs one')
    model.eval()
    graph = build_graph(model, with_presence, with_logits)
    height, width = input_shape(model, shape)
    args = example_inputs(graph.input_names, layout, height, width,
                          2 if dynamic_batch else 1)
    directory = osp.dirname(osp.abspath(out_file))
    os.makedirs(directory, exist_ok=True)
    scope = task_scope(model.cfg)
    with DefaultScope.overwrite_default_scope(scope):
        program = trace_program(graph, args, dynamic_batch)
        to_onnx(program, args, out_file, list(graph.input_names), graph.output_names,
                opset)
    written = {
        o.domain or 'ai.onnx': o.version
        for o in onnx.load(out_file, load_external_data=False).opset_import
    }
    meta = describe(model, graph, height, width, dynamic_batch,
                    written.get('ai.onnx', opset))
    if meta['opset'] != opset:
        print_log(
            f'export_onnx: opset {opset} was asked for, torch wrote opset '
            f'{meta["opset"]} (its exporter builds opset 18 and converts)',
            logger='current',
            level=logging.WARNING)
    with open(meta_path(out_file), 'w') as f:
        json.dump(meta, f, indent=1)
    if verify:
        import onnxruntime as ort
        session = ort.InferenceSession(out_file, providers=['CPUExecutionProvider'])
        feeds = {name: arg.numpy() for name, arg in zip(graph.input_names, args)}
        got = session.run(None, feeds)
        with torch.no_grad():
            expected = graph(*args)
        meta = dict(meta, verify=compare_outputs(expected, got, graph.output_names))
    return meta

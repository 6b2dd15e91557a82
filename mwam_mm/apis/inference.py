"""Inference on RGB-T pairs, in the spirit of mmdet's ``init_detector`` /
``inference_detector`` and mmseg's ``init_model`` / ``inference_model``::

    from mwam_mm.apis import init_rgbt_model, inference_rgbt

    model = init_rgbt_model('configs/detection/...llvip.py', 'iter_600.pth')
    sample = inference_rgbt(model, 'visible/190001.jpg', 'infrared/190001.jpg')
    samples = inference_rgbt(model, [rgb_a, rgb_b], [thermal_a, thermal_b])
    sample = inference_rgbt(model, rgb_frame, None, missing='thermal')

Each image is a file path or a numpy array (``H x W x 3`` BGR as OpenCV reads
it, or ``H x W`` grey; uint8, or uint16 for high bit depth). The config's test
pipeline runs on the pair (its annotation-loading steps removed; arrays go
through :class:`mwam_mm.datasets.LoadRGBTImagePairFromNDArray`, which applies the
same checks), then the model's ``test_step``: the data samples are those of the
test loop (``pred_instances`` for detection, ``pred_sem_seg`` for segmentation),
in original image coordinates.

A modality declared ``missing`` is the ``missing`` robustness scenario: its
image (or, when given as None, a black image of the pair's size) is blanked with
``fill`` and the sample is marked ``missing_modalities``, exactly as
``tools/robustness.py`` does (:func:`mwam_mm.evaluation.robustness.
blanking_pipeline`).
"""
import copy
import os
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import DATASETS, MODELS, VISUALIZERS, DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from ..compat.checkpoint_match import (CheckpointMismatchError, check_checkpoint_fits,
                                       checkpoint_state_dict)
from ..datasets.transforms.loading import image_size
from ..evaluation.robustness import blanking_pipeline
from ..modality import ModalityLayout

ImageLike = Union[str, os.PathLike, np.ndarray, None]
TASKS = {'mmdet': 'detection', 'mmseg': 'segmentation'}
LOADER = 'LoadRGBTImagePair'
ARRAY_LOADER = 'LoadRGBTImagePairFromNDArray'
STREAMS_PREFIX = 'backbone.streams.'
BACKENDS = ('pytorch', 'onnxruntime')


def task_scope(cfg: Config) -> str:
    """``'mmdet'`` or ``'mmseg'``: the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'the config\'s default_scope is {scope!r}; the RGB-T '
                         f'inference API knows {sorted(TASKS)} (detection, '
                         'segmentation)')
    return scope


def model_layout(model) -> Optional[ModalityLayout]:
    """The modality layout of a model with a dual-stream backbone (or of an
    exported one, :class:`mwam_mm.deploy.ONNXRuntimeRGBTModel`), else None."""
    layout = getattr(model, 'layout', None) or getattr(
        getattr(model, 'backbone', None), 'layout', None)
    return layout if isinstance(layout, ModalityLayout) else None


def stream_input_channels(state: Dict[str, object],
                          prefix: str = STREAMS_PREFIX) -> Dict[str, Tuple[str, int]]:
    """``{stream: (tensor name, input channels)}`` from a state dict: the first
    convolution weight (4-D tensor) of each ``backbone.streams.<name>``."""
    found = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):].split('.', 1)[0]
        if name not in found and getattr(value, 'ndim', 0) == 4:
            found[name] = (key, int(value.shape[1]))
    return found


def _describe(channels: Dict[str, int]) -> str:
    return ', '.join(f'{name}: {c} channel{"s" if c != 1 else ""}'
                     for name, c in channels.items())


def check_checkpoint_layout(model, state: Dict[str, object], source: str) -> None:
    """Refuse a checkpoint whose streams are not the model's modality layout.

    Compares each stream's first convolution (its input channels) under
    ``backbone.streams.<modality>`` with the layout of the model's dual-stream
    backbone and names both. Models without one are not checked here.

    Raises:
        CheckpointMismatchError: Other modalities or other channel counts.
    """
    layout = model_layout(model)
    if layout is None:
        return
    expected = {m.name: m.channels for m in layout}
    found = stream_input_channels(state)
    if not found:
        raise CheckpointMismatchError(
            f'checkpoint {source} has no {STREAMS_PREFIX}<modality> weights: it is '
            'not the checkpoint of a dual-stream RGB-T model; the config\'s model '
            f'expects the modality layout {_describe(expected)}')
    got = {name: channels for name, (_, channels) in found.items()}
    if got != expected:
        tensors = ', '.join(f'{key} {tuple(state[key].shape)}'
                            for key, _ in found.values())
        raise CheckpointMismatchError(
            f'checkpoint {source} was trained with the modality layout '
            f'{_describe(got)} (input channels of {tensors}); the config\'s '
            f'model has {_describe(expected)} ({layout!r}). Use the checkpoint of '
            'this config, or give the config the checkpoint\'s modalities')


def _dataset_cfg(cfg: Config) -> dict:
    dataset = cfg.test_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:  # wrappers
        dataset = dataset.dataset
    return dataset


def _config_metainfo(cfg: Config, scope: str) -> dict:
    """The test dataset's metainfo (class METAINFO and the config's), without
    building the dataset (no data needed)."""
    dataset = _dataset_cfg(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        cls = DATASETS.get(dataset['type']) if isinstance(dataset['type'],
                                                          str) else dataset['type']
    if cls is None or not hasattr(cls, '_load_metainfo'):
        return {}
    return dict(cls._load_metainfo(copy.deepcopy(dataset.get('metainfo'))))


def init_rgbt_model(config: Union[str, Path, Config],
                    checkpoint: Optional[str] = None,
                    device: str = 'cpu',
                    cfg_options: Optional[dict] = None,
                    backend: str = 'pytorch'):
    """Build a config's model and load a checkpoint, for inference.

    With ``backend='onnxruntime'``, ``checkpoint`` is an exported ``.onnx`` file
    (``tools/deploy/export_onnx.py``) and the result a
    :class:`mwam_mm.deploy.ONNXRuntimeRGBTModel`, which the rest of this module
    (and ``tools/infer.py``) uses as it uses the PyTorch model.

    A checkpoint whose modality layout differs from the config's
    (:func:`check_checkpoint_layout`) or whose tensors do not fit the model
    otherwise (:func:`mwam_mm.compat.check_checkpoint_fits`) is refused, naming
    both. ``model.dataset_meta`` comes from the checkpoint (mmengine saves the
    training set's), else from the config's test dataset; ``model.cfg`` is the
    config.

    Args:
        config (str | Path | Config): The config (file).
        checkpoint (str, optional): The weights; None keeps the initialisation.
        device (str): Where the model goes. Defaults to 'cpu'.
        cfg_options (dict, optional): Config overrides.
        backend (str): ``'pytorch'`` (default) or ``'onnxruntime'``.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend {backend!r}: choose one of {BACKENDS}')
    if backend == 'onnxruntime':
        if checkpoint is None or not str(checkpoint).endswith('.onnx'):
            raise ValueError('the onnxruntime backend runs an exported model: give '
                             f'its .onnx file as the checkpoint, got {checkpoint!r}')
        from ..deploy import ONNXRuntimeRGBTModel
        if config is not None and isinstance(config, (str, Path)) and \
                not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} not found')
        return ONNXRuntimeRGBTModel(checkpoint, config, cfg_options).to(device)
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} not found')
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file name or a Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = task_scope(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model = revert_sync_batchnorm(model)
    meta = {}
    if checkpoint is not None:
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
        state = checkpoint_state_dict(loaded)
        check_checkpoint_layout(model, state, checkpoint)
        check_checkpoint_fits(model, loaded, checkpoint)
        load_state_dict(model, state, strict=True)
        saved = loaded.get('meta', {}).get('dataset_meta') if isinstance(loaded,
                                                                         dict) else None
        meta = {k.lower(): v for k, v in (saved or {}).items()}
    if not meta.get('classes'):
        meta = dict(_config_metainfo(cfg, scope), **meta)
    model.dataset_meta = meta
    model.cfg = cfg
    model.to(device)
    model.eval()
    return model


def _step_type(step: dict) -> str:
    return str(step.get('type', '')).split('.')[-1]


def inference_pipeline(cfg: Config,
                       layout: ModalityLayout,
                       missing: Sequence[str] = (),
                       fill: str = 'zero',
                       from_arrays: bool = False) -> List[dict]:
    """The config's test pipeline for inference: annotation loading removed, the
    ``missing`` modalities blanked and marked (the ``missing`` scenario), and
    the in-memory loader when ``from_arrays``."""
    steps = [
        s for s in copy.deepcopy(list(_dataset_cfg(cfg).pipeline)) if not (
            _step_type(s).startswith('Load') and _step_type(s).endswith('Annotations'))
    ]
    if not any(_step_type(s) == LOADER for s in steps):
        raise ValueError(f'the config\'s test pipeline has no {LOADER} step; its '
                         f'steps: {[s.get("type") for s in steps]}')
    keep = [name for name in layout.names if name not in missing]
    if missing:
        steps = blanking_pipeline(steps, layout, keep, fill, scenario='missing')
    if from_arrays:
        for step in steps:
            if _step_type(step) == LOADER:
                step['type'] = ARRAY_LOADER
    return steps


def _split_after_loading(steps: List[dict]) -> int:
    """Index of the first step after loading (and blanking)."""
    index = next(i for i, s in enumerate(steps)
                 if _step_type(s) in (LOADER, ARRAY_LOADER))
    if index + 1 < len(steps) and _step_type(steps[index + 1]) == 'BlankModality':
        index += 1
    return index + 1


def _check_missing(layout: ModalityLayout, missing) -> List[str]:
    missing = [missing] if isinstance(missing, str) else list(missing or [])
    layout.check_subset(missing)
    if len(set(missing)) == len(layout):
        raise ValueError(f'every modality is declared missing ({missing}); at least '
                         'one image is needed')
    return missing


def _size_of(image: ImageLike) -> Tuple[int, int]:
    """``(height, width)`` of an array or an image file (header only)."""
    if isinstance(image, np.ndarray):
        return image.shape[:2]
    width, height = image_size(str(image))
    return height, width


class _Pipelines:
    """The model's inference pipelines (file and in-memory loading), built once
    per call, each split into loading and the rest."""

    def __init__(self, model, layout, missing, fill):
        self.cfg, self.layout, self.missing, self.fill = (model.cfg, layout, missing,
                                                          fill)
        self.scope = task_scope(model.cfg)
        self._built = {}

    def get(self, from_arrays: bool):
        if from_arrays not in self._built:
            steps = inference_pipeline(self.cfg, self.layout, self.missing, self.fill,
                                       from_arrays)
            cut = _split_after_loading(steps)
            with DefaultScope.overwrite_default_scope(self.scope):
                self._built[from_arrays] = (Compose(steps[:cut]), Compose(steps[cut:]))
        return self._built[from_arrays]


def _sample_results(images: Dict[str, ImageLike], layout: ModalityLayout,
                    missing: Sequence[str], index: int) -> Tuple[dict, bool]:
    """The pipeline's input for one sample, and whether it needs the in-memory
    loader."""
    for name in layout.names:
        if images.get(name) is None and name not in missing:
            raise ValueError(f'no {name} image for sample {index}; give one, or '
                             f'declare {name!r} missing')
    given = {n: v for n, v in images.items() if v is not None}
    if not any(isinstance(v, np.ndarray) for v in given.values()) and len(given) == \
            len(layout):
        return dict({
            layout[n].path_key: str(v)
            for n, v in given.items()
        },
                    img_id=index), False
    height, width = _size_of(next(iter(given.values())))
    filled = {
        m.name: given.get(m.name, np.zeros((height, width, m.channels), np.uint8))
        for m in layout
    }
    return dict(modality_images=filled, img_id=index), True


def inference_multimodal(model,
                         samples: Union[Dict[str, ImageLike],
                                        Sequence[Dict[str, ImageLike]]],
                         missing: Union[str, Sequence[str], None] = None,
                         fill: str = 'zero',
                         return_images: bool = False):
    """:func:`inference_rgbt` for any modality layout: ``samples`` is
    ``{modality: image}`` or a list of them."""
    layout = model_layout(model) or ModalityLayout.build(None)
    missing = _check_missing(layout, missing)
    batch = isinstance(samples, (list, tuple))
    samples = list(samples) if batch else [samples]
    pipelines = _Pipelines(model, layout, missing, fill)
    outputs, images = [], []
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise TypeError(f'sample {index} must be a dict {{modality: image}}, got '
                            f'{type(sample).__name__}')
        layout.check_subset(list(sample))
        results, from_arrays = _sample_results(sample, layout, missing, index)
        loading, rest = pipelines.get(from_arrays)
        with DefaultScope.overwrite_default_scope(pipelines.scope):
            results = loading(results)
            if return_images:
                images.append(results['img'].copy())
            data = rest(results)
            with torch.no_grad():
                outputs.extend(
                    model.test_step(
                        dict(
                            inputs=[data['inputs']],
                            data_samples=[data['data_samples']])))
    if not batch:
        outputs, images = outputs[0], images[0] if images else None
    return (outputs, images) if return_images else outputs


def inference_rgbt(model,
                   rgb: Union[ImageLike, Sequence[ImageLike]],
                   thermal: Union[ImageLike, Sequence[ImageLike]],
                   missing: Union[str, Sequence[str], None] = None,
                   fill: str = 'zero',
                   return_images: bool = False):
    """Run a model on RGB-T pairs through its config's test pipeline.

    Args:
        model: From :func:`init_rgbt_model` (needs ``model.cfg``).
        rgb, thermal: One image each (path or array), or two lists of equal
            length; the image of a missing modality may be None.
        missing (str | list[str], optional): Modalities declared missing: blanked
            with ``fill`` and marked ``missing_modalities`` (the ``missing``
            scenario). A modality given as None must be declared missing.
        fill (str): ``'zero'`` (default) or ``'mean'``.
        return_images (bool): Also return each sample's stacked image as the
            model saw it before resizing (``H x W x C`` in storage order, missing
            modalities blanked), for :class:`mwam_mm.visualization.
            RGBTDetLocalVisualizer` / ``RGBTSegLocalVisualizer``.

    Returns:
        The data sample (``DetDataSample`` / ``SegDataSample``), or a list for
        lists; with ``return_images``, ``(samples, images)``.
    """
    batch = isinstance(rgb, (list, tuple)) or isinstance(thermal, (list, tuple))
    if batch:
        rgb = list(rgb) if isinstance(rgb, (list, tuple)) else [rgb]
        thermal = list(thermal) if isinstance(thermal, (list, tuple)) else [thermal]
        if len(rgb) != len(thermal):
            raise ValueError(f'{len(rgb)} RGB images but {len(thermal)} thermal '
                             'images; give one of each per sample')
        samples = [dict(rgb=r, thermal=t) for r, t in zip(rgb, thermal)]
    else:
        samples = dict(rgb=rgb, thermal=thermal)
    return inference_multimodal(model, samples, missing, fill, return_images)


def build_rgbt_visualizer(model, blend_alpha: Optional[float] = None, **kwargs):
    """An :class:`~mwam_mm.visualization.RGBTDetLocalVisualizer` or
    ``RGBTSegLocalVisualizer`` for ``model``: its layout and dataset meta
    (classes, palette), not registered as mmengine's current visualizer."""
    scope = task_scope(model.cfg)
    name = 'RGBTDetLocalVisualizer' if scope == 'mmdet' else 'RGBTSegLocalVisualizer'
    cls = VISUALIZERS.get(name)
    visualizer = cls(
        name=f'rgbt_inference_{id(model)}',
        modalities=model_layout(model),
        blend_alpha=blend_alpha,
        **kwargs)
    meta = dict(model.dataset_meta or {})
    if scope == 'mmseg':
        classes = list(
            meta.get('classes')
            or [str(i) for i in range(model.decode_head.num_classes)])
        palette = meta.get('palette') or np.random.RandomState(0).randint(
            0, 256, (len(classes), 3)).tolist()
        visualizer.set_dataset_meta(classes=classes, palette=palette)
    else:
        visualizer.dataset_meta = meta
    return visualizer


def prediction_to_dict(data_sample, dataset_meta: Optional[dict] = None) -> dict:
    """A JSON-ready dict of one sample's predictions.

    Detection: ``bboxes`` (``[x1, y1, x2, y2]``, original image pixels),
    ``scores``, ``labels`` and ``label_names``. Segmentation: ``sem_seg``, the
    class index per pixel (rows of the original image). Both: ``classes``.
    """
    classes = list((dataset_meta or {}).get('classes') or [])
    out = dict(classes=classes)
    if 'pred_instances' in data_sample:
        pred = data_sample.pred_instances.cpu()
        labels = [int(v) for v in pred.labels]
        out.update(
            bboxes=[[round(float(v), 2) for v in box] for box in pred.bboxes],
            scores=[round(float(v), 5) for v in pred.scores],
            labels=labels,
            label_names=[classes[v] if v < len(classes) else str(v) for v in labels])
    if 'pred_sem_seg' in data_sample:
        out['sem_seg'] = data_sample.pred_sem_seg.data[0].cpu().numpy().astype(
            int).tolist()
    return out

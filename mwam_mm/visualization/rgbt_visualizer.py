"""Visualisers and visualisation hooks for stacked RGB-T images.

mmdet's and mmseg's visualisers draw on a 3-channel RGB image; a sample here is
one stacked ``H x W x C`` array (RGB 3 channels, BGR as stored, then thermal 1
channel, in the order of the modality layout), and the stock visualisation hooks
read only the RGB file (``img_path``; MFNet's RGBA samples have none). The classes
here split the stacked image by the layout, give each modality a display image
(grey -> 3 channels, BGR -> RGB where the layout says the modality is stored BGR),
draw on each with the parent visualiser's own drawing, and put the results side by
side.

**Output layout.** Side by side (default), with ground truth and predictions:

    [ GT on rgb | GT on thermal | prediction on rgb | prediction on thermal ]

each panel ``H x W`` (the sample's original size), modalities in layout order;
ground truth left and predictions right as mmdet and mmseg place them; one side
alone (``2W`` wide) when only ground truth or only predictions are drawn. With
``blend_alpha=a`` each side is one blended panel, ``a * rgb + (1 - a) * thermal``
(layout order: the first modality gets ``a``, the others share ``1 - a``), so the
image is ``[ GT | prediction ]``.
"""
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import mmcv
import numpy as np
import torch
from mmdet.engine.hooks import DetVisualizationHook
from mmdet.structures.bbox import BaseBoxes
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, VISUALIZERS
from mmengine.utils import mkdir_or_exist
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.visualization import SegLocalVisualizer

from ..modality import LayoutLike, ModalityLayout
from ..presence import MISSING_KEY


def modality_views(stacked: np.ndarray, layout: ModalityLayout) -> List[np.ndarray]:
    """One ``H x W x 3`` uint8 RGB display image per modality, in layout order.

    Args:
        stacked (np.ndarray): ``H x W x C`` in storage order (what
            :class:`mwam_mm.datasets.LoadRGBTImagePair` gives; RGB stored BGR).
            Values on the 0-255 scale are clipped; a modality whose values exceed
            255 (``depth_scaling='raw'``) is min-max scaled for display.
    """
    if stacked.ndim != 3 or stacked.shape[2] != layout.num_channels:
        raise ValueError(f'expected an H x W x {layout.num_channels} image stacked as '
                         f'{layout!r}, got shape {tuple(stacked.shape)}')
    views = []
    for m in layout:
        part = stacked[..., layout.channel_slice(m.name)]
        if part.dtype != np.uint8:
            part = part.astype(np.float32)
            low, high = float(part.min()), float(part.max())
            if high > 255 or low < 0:  # raw units: stretch for display
                part = (part - low) * (255.0 / max(high - low, 1e-12))
            part = np.clip(np.round(part), 0, 255).astype(np.uint8)
        if m.channels == 1:
            part = np.repeat(part, 3, axis=2)
        elif m.bgr_to_rgb:
            part = part[..., ::-1]
        views.append(np.ascontiguousarray(part))
    return views


def blend_views(views: Sequence[np.ndarray], alpha: float) -> np.ndarray:
    """``alpha`` times the first view plus the others sharing ``1 - alpha``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'blend_alpha must be in [0, 1], got {alpha}')
    rest = (1.0 - alpha) / (len(views) - 1)
    out = alpha * views[0].astype(np.float32)
    for view in views[1:]:
        out += rest * view.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def load_sample_image(data_sample, layout: ModalityLayout) -> Optional[np.ndarray]:
    """The stacked image of a sample, re-read from the files its metainfo names.

    ``stacked_path`` (one file) or every modality's ``path_key``; None when the
    sample does not carry them (e.g. a Pack step without ``thermal_path`` in its
    ``meta_keys``, or an in-memory sample).
    """
    from ..datasets.transforms import LoadRGBTImagePair
    meta = data_sample.metainfo if data_sample is not None else {}
    results = {}
    if meta.get('stacked_path'):
        results['stacked_path'] = meta['stacked_path']
    elif all(meta.get(m.path_key) for m in layout):
        results.update({m.path_key: meta[m.path_key] for m in layout})
    else:
        return None
    return LoadRGBTImagePair(modalities=layout)(results)['img']


def input_image(inputs: torch.Tensor, data_sample) -> np.ndarray:
    """A pipeline output (``C x H x W`` tensor) as ``H x W x C`` at the sample's
    original size (test pipelines resize; predictions are in original
    coordinates)."""
    img = inputs.detach().cpu().numpy().transpose(1, 2, 0)
    ori = data_sample.metainfo.get('ori_shape') if data_sample is not None else None
    if ori is not None and tuple(ori[:2]) != img.shape[:2]:
        img = cv2.resize(
            img, (int(ori[1]), int(ori[0])), interpolation=cv2.INTER_LINEAR)
        if img.ndim == 2:  # cv2 drops a single channel
            img = img[..., None]
    return img


class RGBTVisualizerMixin:
    """Draws on every modality of a stacked image (see the module docstring).

    Args:
        modalities (list[dict], optional): Modality layout; ``None`` for the
            default RGB + thermal. The hooks here set it from the model's
            backbone.
        blend_alpha (float, optional): Blend the modalities into one panel with
            this weight for the first (RGB); ``None`` (default) puts them side by
            side.
    """

    def _init_rgbt(self, modalities: LayoutLike, blend_alpha: Optional[float]):
        self.layout = ModalityLayout.build(modalities)
        if blend_alpha is not None:
            blend_views([np.zeros((1, 1, 3), np.uint8)] * 2, blend_alpha)  # checks
        self.blend_alpha = blend_alpha

    def stacked_image(self, image: np.ndarray, data_sample=None) -> np.ndarray:
        """``image`` if it is stacked as the layout says; a 3-channel image (what
        the stock hooks pass: the RGB file alone) is replaced by the sample's
        files."""
        if image.ndim == 3 and image.shape[2] == self.layout.num_channels:
            return image
        loaded = load_sample_image(data_sample, self.layout)
        if loaded is None:
            raise ValueError(
                f'{type(self).__name__}: got an image of shape {tuple(image.shape)}, '
                f'not H x W x {self.layout.num_channels} stacked as {self.layout!r}, '
                'and the data sample does not name every modality\'s file (its '
                f'metainfo has no stacked_path and not all of '
                f'{[m.path_key for m in self.layout]}). Pass the stacked image '
                '(LoadRGBTImagePair\'s img), or use RGBTDetVisualizationHook / '
                'RGBTSegVisualizationHook')
        return loaded

    def views(self, stacked: np.ndarray) -> List[np.ndarray]:
        views = modality_views(stacked, self.layout)
        if self.blend_alpha is not None:
            return [blend_views(views, self.blend_alpha)]
        return views

    def _draw_view(self, name, view, data_sample, draw_gt, draw_pred, step,
                   kwargs) -> np.ndarray:
        """The parent's ``add_datasample`` on one display image; returns what it
        would store (its GT | prediction image) instead of storing it."""
        captured = {}

        def capture(_name, image, _step=0):
            captured['image'] = image

        self.add_image = capture  # the parents store their result through it
        try:
            super().add_datasample(
                name,
                view,
                data_sample,
                draw_gt=draw_gt,
                draw_pred=draw_pred,
                show=False,
                out_file=None,
                step=step,
                **kwargs)
        finally:
            del self.add_image
        drawn = captured.get('image')
        return view if drawn is None else drawn

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       **kwargs) -> None:
        """Draw a sample on every modality and store, show or write the result.

        Args:
            name (str): The image identifier.
            image (np.ndarray): The stacked image, ``H x W x C`` in storage order
                (``LoadRGBTImagePair``'s ``img``); a 3-channel image is replaced by
                the files the data sample names.
            data_sample: The sample with ground truth and/or predictions.
            draw_gt, draw_pred, show, wait_time, out_file, step: As the parent's.
            **kwargs: The parent's other options (``pred_score_thr`` for
                detection, ``with_labels`` for segmentation).
        """
        stacked = self.stacked_image(image, data_sample)
        views = self.views(stacked)
        width = views[0].shape[1]
        drawn = [
            self._draw_view(name, view, data_sample, draw_gt, draw_pred, step, kwargs)
            for view in views
        ]
        sides = drawn[0].shape[1] // width  # 2 with GT and predictions, else 1
        panels = [d[:, s * width:(s + 1) * width] for s in range(sides) for d in drawn]
        drawn_img = np.concatenate(panels, axis=1)
        self.set_image(drawn_img)
        if show:
            self.show(drawn_img, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn_img[..., ::-1], out_file)
        else:
            self.add_image(name, drawn_img, step)


@VISUALIZERS.register_module()
class RGBTDetLocalVisualizer(RGBTVisualizerMixin, DetLocalVisualizer):
    """mmdet's ``DetLocalVisualizer`` for stacked RGB-T images: the same boxes
    (and masks) on every modality, side by side or blended (see the module
    docstring for the layout of the output image).

    Args:
        modalities (list[dict], optional): Modality layout (default RGB +
            thermal).
        blend_alpha (float, optional): Blend instead of side by side.
        **kwargs: ``DetLocalVisualizer``'s arguments.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 modalities: LayoutLike = None,
                 blend_alpha: Optional[float] = None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self._init_rgbt(modalities, blend_alpha)


@VISUALIZERS.register_module()
class RGBTSegLocalVisualizer(RGBTVisualizerMixin, SegLocalVisualizer):
    """mmseg's ``SegLocalVisualizer`` for stacked RGB-T images: the same masks on
    every modality, side by side or blended (see the module docstring).

    Args:
        modalities (list[dict], optional): Modality layout (default RGB +
            thermal).
        blend_alpha (float, optional): Blend instead of side by side.
        **kwargs: ``SegLocalVisualizer``'s arguments.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 modalities: LayoutLike = None,
                 blend_alpha: Optional[float] = None,
                 classes: Optional[Sequence[str]] = None,
                 palette: Optional[Sequence] = None,
                 dataset_name: Optional[str] = None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        # mmseg 1.2.2's __init__ passes palette and classes swapped
        self.set_dataset_meta(
            classes=classes, palette=palette, dataset_name=dataset_name)
        self._init_rgbt(modalities, blend_alpha)


class RGBTVisualizationHookMixin:
    """What the RGB-T hooks share: the stacked image of each output, the layout
    from the model, the output file."""

    def _sync_layout(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        layout = getattr(getattr(model, 'backbone', None), 'layout', None)
        if layout is not None and isinstance(self._visualizer, RGBTVisualizerMixin):
            self._visualizer.layout = layout

    def _check_visualizer(self) -> None:
        if not isinstance(self._visualizer, RGBTVisualizerMixin):
            raise TypeError(f'{type(self).__name__} needs an RGB-T visualizer '
                            "(visualizer=dict(type='RGBTDetLocalVisualizer') or "
                            "'RGBTSegLocalVisualizer'), the runner has "
                            f'{type(self._visualizer).__name__}')

    def _sample_image(self, data_batch: dict, index: int, data_sample) -> np.ndarray:
        """The sample's files when its metainfo names them (full resolution),
        else the pipeline's output resized to the original size; a modality
        marked missing is shown black."""
        layout = self._visualizer.layout
        img = load_sample_image(data_sample, layout)
        if img is None:
            img = input_image(data_batch['inputs'][index], data_sample)
        missing = data_sample.metainfo.get(MISSING_KEY) or []
        if missing:
            img = img.copy()
            for name in missing:
                img[..., layout.channel_slice(name)] = 0
        return img

    @staticmethod
    def _sample_name(data_sample, index: int) -> str:
        meta = data_sample.metainfo
        path = meta.get('img_path') or meta.get('stacked_path')
        if path:
            return osp.basename(path)
        return f'{meta.get("img_id", index)}.png'

    def _resolve_test_out_dir(self, runner) -> None:
        # once (mmdet's hook re-joins it every iteration)
        if self.test_out_dir is not None and not getattr(self, '_out_dir_ready', False):
            self.test_out_dir = osp.join(runner.work_dir, runner.timestamp,
                                         self.test_out_dir)
            mkdir_or_exist(self.test_out_dir)
            self._out_dir_ready = True

    def _draw(self, runner, data_batch, outputs, mode: str, batch_idx: int,
              options: dict) -> None:
        # the runner's own (the stock hooks take mmengine's latest instance, which
        # is another runner's when a visualizer name is reused)
        self._visualizer = runner.visualizer
        self._check_visualizer()
        self._sync_layout(runner)
        if mode == 'val':
            if (runner.iter + batch_idx) % self.interval != 0:
                return
            sample = outputs[0]
            name = self._sample_name(sample, 0)
            self._visualizer.add_datasample(
                name if self.show else 'val_img',
                self._sample_image(data_batch, 0, sample),
                data_sample=sample,
                show=self.show,
                wait_time=self.wait_time,
                step=runner.iter + batch_idx,
                **options)
            return
        self._resolve_test_out_dir(runner)
        for index, sample in enumerate(outputs):
            self._test_index += 1
            name = self._sample_name(sample, self._test_index)
            out_file = None
            if self.test_out_dir is not None:
                out_file = osp.join(self.test_out_dir, name)
            self._visualizer.add_datasample(
                name if self.show else 'test_img',
                self._sample_image(data_batch, index, sample),
                data_sample=sample,
                show=self.show,
                wait_time=self.wait_time,
                out_file=out_file,
                step=self._test_index,
                **options)


@HOOKS.register_module()
class RGBTDetVisualizationHook(RGBTVisualizationHookMixin, DetVisualizationHook):
    """mmdet's ``DetVisualizationHook`` for RGB-T samples: draws with an
    :class:`RGBTDetLocalVisualizer` on the stacked pair (re-read from the files
    the sample names, else the pipeline's image at the original size).

    Arguments as ``DetVisualizationHook`` (``draw``, ``interval``, ``score_thr``,
    ``show``, ``wait_time``, ``test_out_dir``: relative to
    ``work_dir/timestamp``, or absolute).
    """

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict, outputs) -> None:
        if self.draw:
            self._draw(runner, data_batch, outputs, 'val', batch_idx,
                       dict(pred_score_thr=self.score_thr))

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs) -> None:
        if self.draw:
            self._draw(runner, data_batch, outputs, 'test', batch_idx,
                       dict(pred_score_thr=self.score_thr))


@HOOKS.register_module()
class RGBTSegVisualizationHook(RGBTVisualizationHookMixin, SegVisualizationHook):
    """mmseg's ``SegVisualizationHook`` for RGB-T samples, drawing with an
    :class:`RGBTSegLocalVisualizer`; also takes ``test_out_dir`` (as mmdet's
    hook: one image per test sample, written there).

    Args:
        test_out_dir (str, optional): Where test images go (relative to
            ``work_dir/timestamp``, or absolute); None: the visualizer's
            backends.
        **kwargs: ``SegVisualizationHook``'s arguments.
    """

    def __init__(self, test_out_dir: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.test_out_dir = test_out_dir
        self._test_index = 0

    def _after_iter(self,
                    runner,
                    batch_idx: int,
                    data_batch: dict,
                    outputs,
                    mode: str = 'val') -> None:
        if self.draw and mode != 'train':
            self._draw(runner, data_batch, outputs, mode, batch_idx, {})


def draw_boxes_as_tensors(data_sample):
    """A copy of ``data_sample`` whose ``gt_instances.bboxes`` is a plain tensor
    (mmdet's visualiser draws tensors; the train pipeline packs box objects)."""
    data_sample = data_sample.clone()
    gt = data_sample.get('gt_instances')
    if gt is not None and isinstance(gt.get('bboxes', None), BaseBoxes):
        gt.bboxes = gt.bboxes.tensor
    return data_sample


# the stock classes and their RGB-T counterparts (config types, with or without scope)
RGBT_TYPES = {
    'DetVisualizationHook': 'RGBTDetVisualizationHook',
    'SegVisualizationHook': 'RGBTSegVisualizationHook',
    'DetLocalVisualizer': 'RGBTDetLocalVisualizer',
    'SegLocalVisualizer': 'RGBTSegLocalVisualizer',
}
DEFAULT_HOOKS = {
    'mmdet': 'RGBTDetVisualizationHook',
    'mmseg': 'RGBTSegVisualizationHook'
}
DEFAULT_VISUALIZERS = {
    'mmdet': 'RGBTDetLocalVisualizer',
    'mmseg': 'RGBTSegLocalVisualizer'
}


def _rgbt_type(type_name) -> object:
    if not isinstance(type_name, str):
        return type_name
    return RGBT_TYPES.get(type_name.split('.')[-1], type_name)


def enable_test_visualization(cfg, out_dir: str):
    """Make ``cfg``'s test loop draw every sample into ``out_dir``
    (``tools/test.py --show-dir``).

    The visualisation hook gets ``draw=True`` and ``test_out_dir`` (absolute, so
    the images land in ``out_dir`` itself); mmdet's and mmseg's stock hook and
    visualiser types are replaced by the RGB-T ones (their other settings kept).

    Args:
        cfg (Config): Changed in place and returned.
        out_dir (str): Where the images go, one per test sample.
    """
    scope = cfg.get('default_scope')
    hooks = cfg.setdefault('default_hooks', {})
    hook = dict(hooks.get('visualization') or {})
    hook['type'] = _rgbt_type(hook.get('type', DEFAULT_HOOKS.get(scope)))
    if hook['type'] is None:
        raise ValueError(f'no visualisation hook for default_scope {scope!r}; add '
                         'one to default_hooks.visualization')
    hook.update(draw=True, test_out_dir=osp.abspath(out_dir))
    hooks['visualization'] = hook
    visualizer = dict(cfg.get('visualizer') or {})
    visualizer['type'] = _rgbt_type(
        visualizer.get('type', DEFAULT_VISUALIZERS.get(scope)))
    cfg.visualizer = visualizer
    return cfg

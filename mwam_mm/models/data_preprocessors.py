"""Data preprocessors for stacked multimodal inputs.

The stock ``ImgDataPreprocessor`` accepts 1 or 3 mean/std values and swaps BGR->RGB
only for 3-channel inputs. The stacked RGB-T image has ``3 + Ct`` channels, so these
preprocessors take mean, std and BGR order from the modality layout, per channel, and
reuse the stock batching, padding and normalisation code for everything else.
"""
import logging
from typing import Optional

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmengine.logging import print_log
from mmengine.registry import MODELS
from mmseg.models.data_preprocessor import SegDataPreProcessor

from ..modality import LayoutLike, ModalityLayout
from ..modality_dropout import ModalityDropoutSampler
from ..presence import MISSING_KEY, add_missing, check_missing


class RGBTPreprocessorMixin:
    """Per-modality normalisation and channel order for stock preprocessors.

    Mixed in before a stock preprocessor class, it takes ``modalities``, ``mean``,
    ``std`` and ``modality_dropout`` (see :class:`RGBTDetDataPreprocessor`), passes
    the other arguments on, and checks and reorders the channels before the stock
    ``forward``. After it, it applies modality dropout (training only): a
    feature-level drop is written into the sample's ``missing_modalities``
    (:mod:`mwam_mm.presence`), which the model reads from the data samples.
    """

    def __init__(self,
                 modalities: LayoutLike = None,
                 mean: Optional[dict] = None,
                 std: Optional[dict] = None,
                 modality_dropout: Optional[dict] = None,
                 dead_camera: Optional[dict] = None,
                 **kwargs):
        for key in ('bgr_to_rgb', 'rgb_to_bgr'):
            if kwargs.pop(key, False):
                raise ValueError(
                    f'{type(self).__name__}: {key} is set per modality in the layout'
                    " (e.g. dict(name='rgb', bgr_to_rgb=True)), not here")
        super().__init__(**kwargs)
        self._init_modalities(modalities, mean, std)
        self.modality_dropout = None
        if modality_dropout is not None:
            self.modality_dropout = ModalityDropoutSampler(
                **dict(modality_dropout),
                modalities=self.layout,
                owner=f'{type(self).__name__}.modality_dropout')
        self.dead_camera = None if dead_camera is None else DeadCameraCheck(
            self.layout, owner=f'{type(self).__name__}.dead_camera', **dead_camera)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not training and self.dead_camera is not None:
            self.dead_camera.mark(data['inputs'], data.get('data_samples'))
        data = super().forward(self._check_and_reorder(data), training)
        samples = data.get('data_samples')
        for i, sample in enumerate(samples or []):  # a clear error early
            missing = getattr(sample, 'metainfo', {}).get(MISSING_KEY)
            if missing:
                check_missing(missing, self.layout, where=f'sample {i} of the batch')
        if training and self.modality_dropout is not None:
            self._drop_modalities(data['inputs'], samples)
        return data

    def _drop_modalities(self, inputs: torch.Tensor, samples) -> None:
        """Per sample, drop what the sampler draws: blank the normalised input
        (``level='input'``) or mark the sample (``level='feature'``)."""
        sampler = self.modality_dropout
        if not samples or len(samples) != inputs.shape[0]:
            raise ValueError(
                f'{type(self).__name__}: modality_dropout needs one data sample per '
                f'image, got {0 if not samples else len(samples)} for '
                f'{inputs.shape[0]} images')
        for i, sample in enumerate(samples):
            dropped = sampler.draw(lambda: float(torch.rand(())))
            if not dropped:
                continue
            if sampler.level == 'feature':
                sample.set_metainfo({
                    MISSING_KEY:
                    add_missing(sample.metainfo.get(MISSING_KEY), dropped, self.layout)
                })
                continue
            for name in dropped:
                channels = self.layout.channel_slice(name)
                inputs[i, channels] = self._blank_value(name, sampler.fill).to(inputs)

    def _blank_value(self, name: str, fill: str) -> torch.Tensor:
        """A blanked modality's value after normalisation, per channel."""
        channels = self.layout.channel_slice(name)
        if fill == 'mean':
            return torch.zeros_like(self.mean[channels])
        return (0 - self.mean[channels]) / self.std[channels]  # black pixels

    def _init_modalities(self, modalities: LayoutLike, mean: Optional[dict],
                         std: Optional[dict]) -> None:
        self.layout = ModalityLayout.build(modalities)
        overrides = dict(mean=dict(mean or {}), std=dict(std or {}))
        for key, values in overrides.items():
            self.layout.check_subset(list(values))
        means, stds, order = [], [], []
        offset = 0
        for m in self.layout:
            m_mean = list(overrides['mean'].get(m.name, m.mean))
            m_std = list(overrides['std'].get(m.name, m.std))
            for key, values in (('mean', m_mean), ('std', m_std)):
                if len(values) != m.channels:
                    raise ValueError(
                        f'{type(self).__name__}: {key} of modality {m.name!r} needs '
                        f'{m.channels} value(s), got {values}')
            means += m_mean
            stds += m_std
            channels = list(range(offset, offset + m.channels))
            order += channels[::-1] if m.bgr_to_rgb else channels
            offset += m.channels
        self._enable_normalize = True
        self.register_buffer('mean', torch.tensor(means).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(stds).view(-1, 1, 1), False)
        self._channel_order = order if order != sorted(order) else None

    def _check_and_reorder(self, data: dict) -> dict:
        inputs = data['inputs']
        expected = self.layout.num_channels
        tensors = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        channel_dim = 1 if isinstance(inputs, torch.Tensor) else 0
        for t in tensors:
            if t.shape[channel_dim] != expected:
                raise ValueError(
                    f'{type(self).__name__}: an input has {t.shape[channel_dim]} '
                    f'channels (shape {tuple(t.shape)}), the modality layout '
                    f'{self.layout!r} needs {expected}. Check the loader '
                    "(LoadRGBTImagePair) and the 'modalities' setting.")
        if self._channel_order is not None:
            if isinstance(inputs, torch.Tensor):
                inputs = inputs[:, self._channel_order]
            else:
                inputs = [t[self._channel_order] for t in inputs]
            data = dict(data, inputs=inputs)
        return data


class DeadCameraCheck:
    """Marks a camera missing in a test sample whose frame from it is constant.

    A deployed model is rarely told that a camera died; the camera sends black
    (or grey) frames instead. A modality whose pixels in a sample, before
    normalisation and padding, all lie within ``tolerance`` of each other (max -
    min <= tolerance, over all its channels) is added to that sample's
    ``missing_modalities``: the model then treats it as missing (the
    ``missing`` scenario), not as a real black image. Never in training; never
    for every modality of a sample (nothing is marked then). The first frame of
    each modality that fires is logged with its file, then every ``log_every``-th.

    Args:
        layout (ModalityLayout): The modality layout (channel slices).
        tolerance (float): The largest spread of a constant frame, in the input's
            units (0-255 for 8-bit images; 16-bit thermal is scaled to 0-255 by
            the loader). Defaults to 2.
        log_every (int): Log every n-th detection after the first of a modality.
        owner (str): Name for messages.
    """

    def __init__(self,
                 layout: ModalityLayout,
                 tolerance: float = 2.0,
                 log_every: int = 100,
                 owner: str = 'dead_camera'):
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
                or not tolerance >= 0:
            raise ValueError(f'{owner}: tolerance must be a number >= 0, got '
                             f'{tolerance!r}')
        if isinstance(log_every, bool) or not isinstance(log_every, int) or \
                log_every < 1:
            raise ValueError(f'{owner}: log_every must be an integer >= 1, got '
                             f'{log_every!r}')
        self.layout, self.tolerance, self.log_every = layout, float(
            tolerance), log_every
        self.owner = owner
        self.counts = {name: 0 for name in layout.names}

    def dead(self, image: torch.Tensor) -> list:
        """The modalities whose channels of ``image`` (``C x H x W``) are
        constant up to the tolerance."""
        found = []
        for name in self.layout.names:
            part = image[self.layout.channel_slice(name)]
            if part.numel() and float(part.max() - part.min()) <= self.tolerance:
                found.append(name)
        return found

    def mark(self, inputs, samples) -> None:
        """Add each sample's dead cameras to its ``missing_modalities``."""
        if not samples:
            return
        for index, (image, sample) in enumerate(zip(inputs, samples)):
            dead = self.dead(image)
            if not dead:
                continue
            where = sample.metainfo.get('img_path', f'sample {index} of the batch')
            if len(dead) == len(self.layout):
                print_log(
                    f'{self.owner}: every camera is constant in {where}; none is '
                    'marked missing (a sample needs one)',
                    logger='current',
                    level=logging.WARNING)
                continue
            known = list(sample.metainfo.get(MISSING_KEY) or [])
            new = [name for name in dead if name not in known]
            if not new:
                continue
            sample.set_metainfo(
                {MISSING_KEY: add_missing(known, new, self.layout, where=where)})
            for name in new:
                self.counts[name] += 1
                if self.counts[name] == 1 or self.counts[name] % self.log_every == 0:
                    print_log(
                        f'{self.owner}: the {name} frame of {where} is constant '
                        f'(spread <= {self.tolerance:g}): {name} treated as missing '
                        f'({self.counts[name]} frame(s) so far)',
                        logger='current',
                        level=logging.WARNING)


@MODELS.register_module()
class RGBTDetDataPreprocessor(RGBTPreprocessorMixin, DetDataPreprocessor):
    """``DetDataPreprocessor`` for stacked RGB-T (or any multimodal) images.

    Normalises each channel with its modality's mean/std, swaps BGR->RGB inside the
    modalities stored BGR, then batches and pads exactly as ``DetDataPreprocessor``.

    Args:
        modalities (list[dict], optional): The modality layout; ``None`` for the
            default RGB + 1-channel thermal. Its mean/std/bgr_to_rgb are used.
        mean (dict, optional): ``{modality: [values]}`` overriding the layout's
            mean of those modalities.
        std (dict, optional): Same for std.
        modality_dropout (dict, optional): Modality dropout in training, as
            the keyword arguments of :class:`mwam_mm.ModalityDropoutSampler`
            (``protocol``, ``prob``, ``weights``, ``level``, ``fill``), e.g.
            ``dict(protocol='subsets', level='feature')``: the authors' protocol.
            Applied per sample after normalisation; nothing at val/test time.
        dead_camera (dict, optional): At val/test time, treat a camera whose
            frame is constant as missing: the keyword arguments of
            :class:`DeadCameraCheck` (``tolerance``, ``log_every``), e.g.
            ``dict(tolerance=2)``; ``None`` (default) checks nothing. The
            RGB-T base configs turn it on.
        **kwargs: Other arguments of ``DetDataPreprocessor`` (``pad_size_divisor``,
            ``pad_value``, ``pad_mask``, ``batch_augments`` ...). ``bgr_to_rgb`` and
            ``rgb_to_bgr`` are not accepted: the layout says which modality is BGR.
    """


@MODELS.register_module()
class RGBTSegDataPreprocessor(RGBTPreprocessorMixin, SegDataPreProcessor):
    """``SegDataPreProcessor`` for stacked RGB-T (or any multimodal) images.

    Per-modality normalisation and channel order as
    :class:`RGBTDetDataPreprocessor`; batching and size-divisor padding of images
    and label maps exactly as ``SegDataPreProcessor`` (``size``, ``size_divisor``,
    ``pad_val``, ``seg_pad_val``, ``test_cfg``).

    Args:
        modalities (list[dict], optional): The modality layout.
        mean (dict, optional): ``{modality: [values]}`` overriding the layout.
        std (dict, optional): Same for std.
        modality_dropout (dict, optional): As for
            :class:`RGBTDetDataPreprocessor`.
        dead_camera (dict, optional): As for :class:`RGBTDetDataPreprocessor`.
        **kwargs: Other arguments of ``SegDataPreProcessor``.
    """

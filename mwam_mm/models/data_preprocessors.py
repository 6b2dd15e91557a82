"""Data preprocessors for stacked multimodal inputs.

The stock ``ImgDataPreprocessor`` accepts 1 or 3 mean/std values and swaps BGR->RGB
only for 3-channel inputs. The stacked RGB-T image has ``3 + Ct`` channels, so these
preprocessors take mean, std and BGR order from the modality layout, per channel, and
reuse the stock batching, padding and normalisation code for everything else.
"""
from typing import Optional

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
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

    def forward(self, data: dict, training: bool = False) -> dict:
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
        **kwargs: Other arguments of ``SegDataPreProcessor``.
    """

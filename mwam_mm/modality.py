"""The modality layout: the one description of which modalities a sample holds.

Every component that touches more than one modality (the loader that stacks the
images, the data preprocessor that normalises them, the dual-stream backbone that
splits them, the MWAM hook that weighs them and the robustness evaluation that blanks
them) takes a ``modalities`` argument and builds a :class:`ModalityLayout` from it with
:meth:`ModalityLayout.build`. ``None`` means :data:`DEFAULT_MODALITIES`, so a config
that never mentions modalities gets the same layout everywhere.

The modalities of a sample are stacked along the channel axis in layout order
(``H x W x C`` in the pipeline, ``C x H x W`` in the model): stock geometric transforms
then move every modality identically, and the two images cannot drift apart.
"""
from dataclasses import dataclass, field
from itertools import combinations
from typing import Dict, List, Optional, Sequence, Tuple, Union

# RGB: ImageNet statistics, stored BGR on disk (OpenCV), fed RGB to the network.
# Thermal: one grey channel; 8-bit thermal images of the public RGB-T datasets are
# mid-grey on average with a wide spread, hence the generic 128 / 64.
DEFAULT_MODALITIES = (
    dict(
        name='rgb',
        channels=3,
        path_key='img_path',
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        bgr_to_rgb=True),
    dict(
        name='thermal',
        channels=1,
        path_key='thermal_path',
        mean=(128.0, ),
        std=(64.0, ),
        bgr_to_rgb=False),
)


@dataclass(frozen=True)
class Modality:
    """One modality of a multimodal sample.

    Args:
        name (str): Name used in configs, logs and loss keys (``rgb``, ``thermal``).
        channels (int): Number of channels it takes in the stacked image (1 or 3).
        path_key (str): Key of its file path in a data sample. Defaults to
            ``'{name}_path'``.
        mean (tuple[float]): Per-channel mean used for normalisation, in the order the
            network sees the channels (after any BGR->RGB swap).
        std (tuple[float]): Per-channel standard deviation.
        bgr_to_rgb (bool): Whether the channels are stored BGR (OpenCV) and must be
            swapped to RGB before the network. Only valid for 3 channels.
    """
    name: str
    channels: int
    path_key: str = ''
    mean: Tuple[float, ...] = field(default=())
    std: Tuple[float, ...] = field(default=())
    bgr_to_rgb: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(
                f'modality name must be an identifier-like string, got {self.name!r}')
        if self.channels not in (1, 3):
            raise ValueError(f'modality {self.name!r}: channels must be 1 or 3, '
                             f'got {self.channels!r}')
        if not self.path_key:
            object.__setattr__(self, 'path_key', f'{self.name}_path')
        for key, default in (('mean', 0.0), ('std', 1.0)):
            value = getattr(self, key)
            value = (default, ) * self.channels if value in ((), None) else tuple(
                float(v) for v in value)
            if len(value) == 1 and self.channels > 1:
                value = value * self.channels
            if len(value) != self.channels:
                raise ValueError(
                    f'modality {self.name!r}: {key} needs {self.channels} values '
                    f'(one per channel), got {len(value)}: {value}')
            object.__setattr__(self, key, value)
        if any(s <= 0 for s in self.std):
            raise ValueError(f'modality {self.name!r}: std must be positive, '
                             f'got {self.std}')
        if self.bgr_to_rgb and self.channels != 3:
            raise ValueError(f'modality {self.name!r}: bgr_to_rgb needs 3 channels, '
                             f'it has {self.channels}')


LayoutLike = Union[None, 'ModalityLayout', Sequence[Union[dict, Modality]]]


def _with_defaults(spec: dict) -> dict:
    """Fill what a modality dict leaves out from the default of the same name.

    ``dict(name='thermal', channels=3)`` keeps thermal's file key and mean/std (one
    value per channel); an unknown name gets generic defaults.
    """
    default = next((d for d in DEFAULT_MODALITIES if d['name'] == spec.get('name')),
                   None)
    if default is None:
        return dict(spec)
    merged = dict(default, **spec)
    channels = merged['channels']
    if channels != default['channels']:
        for key in ('mean', 'std'):
            if key not in spec and len(default[key]) == 3 and channels == 1:
                merged[key] = (sum(default[key]) / 3, )
        if 'bgr_to_rgb' not in spec and channels != 3:
            merged['bgr_to_rgb'] = False
    return merged


def non_empty_subsets(names: Sequence[str]) -> List[Tuple[str, ...]]:
    """All non-empty subsets of ``names``, the full set first, then by size."""
    return [c for size in range(len(names), 0, -1) for c in combinations(names, size)]


class ModalityLayout:
    """The ordered modalities of a sample and where their channels lie.

    Args:
        modalities (Sequence[dict | Modality]): The modalities in stacking order.
            Dicts take the arguments of :class:`Modality`.
    """

    def __init__(self, modalities: Sequence[Union[dict, Modality]]):
        items = []
        for m in modalities:
            if isinstance(m, Modality):
                items.append(m)
            elif isinstance(m, dict):
                unknown = set(m) - set(Modality.__dataclass_fields__)
                if unknown:
                    raise ValueError(
                        f'unknown key(s) {sorted(unknown)} in modality {dict(m)}; '
                        f'expected some of {sorted(Modality.__dataclass_fields__)}')
                items.append(Modality(**_with_defaults(m)))
            else:
                raise TypeError('a modality must be a dict or Modality, got '
                                f'{type(m).__name__}: {m!r}')
        if len(items) < 2:
            raise ValueError('a modality layout needs at least two modalities, got '
                             f'{[m.name for m in items]}')
        names = [m.name for m in items]
        if len(set(names)) != len(names):
            raise ValueError(f'modality names must be unique, got {names}')
        self.modalities: Tuple[Modality, ...] = tuple(items)

    @classmethod
    def build(cls, modalities: LayoutLike = None) -> 'ModalityLayout':
        """Build a layout from ``None`` (the default), a layout, or a list."""
        if modalities is None:
            return cls(DEFAULT_MODALITIES)
        if isinstance(modalities, ModalityLayout):
            return modalities
        if isinstance(modalities, (list, tuple)):
            return cls(modalities)
        raise TypeError('modalities must be None, a ModalityLayout or a list of '
                        f'dicts, got {type(modalities).__name__}')

    @property
    def names(self) -> List[str]:
        return [m.name for m in self.modalities]

    @property
    def num_channels(self) -> int:
        return sum(m.channels for m in self.modalities)

    def __len__(self) -> int:
        return len(self.modalities)

    def __iter__(self):
        return iter(self.modalities)

    def __getitem__(self, name: str) -> Modality:
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(f'no modality named {name!r}; the layout has {self.names}')

    def __eq__(self, other) -> bool:
        return (isinstance(other, ModalityLayout)
                and self.modalities == other.modalities)

    def __repr__(self) -> str:
        parts = ', '.join(f'{m.name}:{m.channels}' for m in self.modalities)
        return f'ModalityLayout({parts})'

    def channel_slice(self, name: str) -> slice:
        """The channels of modality ``name`` in the stacked image."""
        start = 0
        for m in self.modalities:
            if m.name == name:
                return slice(start, start + m.channels)
            start += m.channels
        raise KeyError(f'no modality named {name!r}; the layout has {self.names}')

    def split(self, stacked, dim: int = 1) -> Dict[str, object]:
        """Split a stacked tensor/array into ``{name: part}`` along ``dim``."""
        if stacked.shape[dim] != self.num_channels:
            raise ValueError(
                f'expected {self.num_channels} stacked channels for {self!r} along '
                f'dim {dim}, got shape {tuple(stacked.shape)}')
        index = [slice(None)] * stacked.ndim
        parts = {}
        for m in self.modalities:
            index[dim] = self.channel_slice(m.name)
            parts[m.name] = stacked[tuple(index)]
        return parts

    def check_subset(self, names: Optional[Sequence[str]]) -> List[str]:
        """Validate a list of modality names against the layout and return it."""
        names = list(names or [])
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise KeyError(f'unknown modality name(s) {unknown}; the layout has '
                           f'{self.names}')
        return names

    def non_empty_subsets(self) -> List[Tuple[str, ...]]:
        """All non-empty subsets of modalities, the full set first, then by size."""
        return non_empty_subsets(self.names)

"""The benchmark's variants: one declarative table, name -> method overlays.

A variant is a family's base config (``--config``, the baseline) with method
overlays applied in order. An overlay is a file of ``configs/_base_/methods/``
(see its README): ``custom_hooks`` and/or ``method_model``, the method's change
to ``model``. :func:`load_variant` merges them into the loaded base exactly as
mmengine's inheritance merges a leaf config into its bases, so the variant of a
family that has a leaf config for it (``<base>_<name>.py``, e.g. the synthetic
family's) is that leaf's config.
"""
import copy
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METHODS_DIR = osp.join(ROOT, 'configs', '_base_', 'methods')
SYNTHETIC_CONFIG = osp.join(ROOT, 'configs', 'detection',
                            'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py')
#: the segmentation family of the synthetic benchmark (MFNet layout)
SYNTHETIC_SEG_CONFIG = osp.join(ROOT, 'configs', 'segmentation',
                                'deeplabv3plus_dual-r18-slim-d8_1xb8-12e_synthetic.py')
#: the key of an overlay that holds its change to ``model`` (mmengine refuses a
#: second ``model`` among a leaf's bases, so overlays cannot name it ``model``)
METHOD_MODEL_KEY = 'method_model'


@dataclass(frozen=True)
class Variant:
    """One row of :data:`VARIANTS`.

    Args:
        name (str): The variant's name (``--variants``, the run dirs, the
            board).
        overlays (tuple[str]): Overlays (file stems under
            ``configs/_base_/methods``), applied in order; none for the baseline.
        description (str): What the variant trains, in a few words (the
            overlays' comments say it in full).
        ceiling (str, optional): The one modality a unimodal ceiling trains and
            is tested on; None for fused variants.
        analysis (bool): An analysis variant or control of the synthetic
            benchmark rather than a method.
        cost (float): Training cost relative to the baseline's (auxiliary heads
            cost more, a ceiling has one stream): the longest runs are started
            first when runs go in parallel.
        iter_overlays (tuple[str], optional): The overlays for a family trained
            by iterations (``train_cfg.max_iters``: the segmentation configs),
            where the method's schedule is counted in iterations; default:
            ``overlays``.
        streams_from (tuple[str]): Ceiling variants whose run of the same seed
            gives each stream its starting weights (``cmpt-frozen``: the unimodal
            references' streams); such a variant runs after them.
    """
    name: str
    overlays: Tuple[str, ...]
    description: str
    ceiling: Optional[str] = None
    analysis: bool = False
    cost: float = 1.0
    iter_overlays: Optional[Tuple[str, ...]] = None
    streams_from: Tuple[str, ...] = ()

    def overlays_for(self, cfg: Config) -> Tuple[str, ...]:
        """The overlays for the family of ``cfg`` (by how it counts training)."""
        by_iters = 'max_iters' in (cfg.get('train_cfg') or {})
        if by_iters and self.iter_overlays is not None:
            return self.iter_overlays
        return self.overlays


#: the variants in report order (:data:`VARIANTS`: by name). One setting per
#: method and schedule kind, applied to any family: the synthetic family's leaf
#: configs are these variants. Two leaf configs of other families choose
#: otherwise and are not what ``--config <their base>`` trains: the real
#: detection datasets' BTW refreshes every 5 epochs (``btw_every-5e``),
#: SegFormer's MWAM scales updates (``mwam-update``: AdamW normalises gradients)
_TABLE = (
    Variant('baseline', (), 'no balancing'),
    Variant('moddrop', ('moddrop', ), 'feature-level modality dropout'),
    Variant('mwam', ('mwam', ), 'MWAM, branch gradients scaled'),
    Variant('moddrop-mwam', ('moddrop', 'mwam'), 'MWAM on modality dropout'),
    Variant('ogm-ge', ('ogm-ge', ), 'OGM-GE', iter_overlays=('ogm-ge_80k', )),
    Variant('rsc-md', ('rsc-md', ), 'RSC-MD', cost=1.5, iter_overlays=('rsc-md_80k', )),
    Variant('btw', ('btw', ), 'BTW', iter_overlays=('btw_every-10k-iters', )),
    Variant('cmpt', ('cmpt', ), 'CMPT-style cross-modal proxies'),
    Variant(
        'cmpt-frozen', ('cmpt-frozen', ),
        'CMPT over the frozen unimodal references, low-rank adapters',
        streams_from=('unimodal-rgb', 'unimodal-thermal')),
    Variant(
        'rsc-view', ('rsc-view', ), 'head trained on single-camera views', cost=2.0),
    Variant('unimodal-rgb', ('unimodal-rgb', ), 'RGB ceiling', ceiling='rgb', cost=0.7),
    Variant(
        'unimodal-thermal', ('unimodal-thermal', ),
        'thermal ceiling',
        ceiling='thermal',
        cost=0.7),
    # analysis variants of the synthetic family
    Variant('mwam-update', ('mwam-update', ), 'MWAM, updates scaled', analysis=True),
    Variant('moddrop-input', ('moddrop-input', ), 'input-level dropout', analysis=True),
    Variant('mwam-robust', ('mwam-robust', ), 'MWAM, band-energy FRM', analysis=True),
    # controls of MWAM (benchmarks/mwam_ablation.py)
    Variant(
        'moddrop-constk', ('moddrop', 'constk'),
        'dropout, constant branch weights',
        analysis=True),
    Variant(
        'moddrop-mwam-swap', ('moddrop', 'mwam-swap'),
        'MWAM on dropout, K swapped',
        analysis=True),
)
VARIANTS: Dict[str, Variant] = {v.name: v for v in _TABLE}
BASELINE = 'baseline'
#: the unimodal ceilings: variant -> the one modality it uses
CEILINGS = {name: v.ceiling for name, v in VARIANTS.items() if v.ceiling}
ANALYSIS_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.analysis)


def existing_config(path: str) -> str:
    """``path`` as given, else relative to the repository root; absolute."""
    for candidate in (path, osp.join(ROOT, path)):
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    raise FileNotFoundError(f'config file {path} not found (also not under {ROOT})')


def check_variants(names: Sequence[str]) -> List[str]:
    """``names`` as a list, each a key of :data:`VARIANTS`.

    Raises:
        KeyError: An unknown name (the known ones are listed).
    """
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise KeyError(f'unknown variant(s) {unknown}; known: {list(VARIANTS)}')
    return names


def overlay_path(name: str) -> str:
    """The file of the overlay ``name`` (``configs/_base_/methods/<name>.py``).

    Raises:
        FileNotFoundError: No such overlay (the existing ones are listed).
    """
    path = osp.join(METHODS_DIR, f'{name}.py')
    if not osp.isfile(path):
        known = sorted(f[:-3] for f in os.listdir(METHODS_DIR) if f.endswith('.py'))
        raise FileNotFoundError(f'no method overlay {name!r} ({path}); the overlays: '
                                f'{known}')
    return path


def overlay_delta(name: str) -> dict:
    """The overlay ``name`` as config options: ``method_model`` becomes
    ``model``; every other key as it is."""
    delta = Config.fromfile(overlay_path(name), import_custom_modules=False).to_dict()
    if METHOD_MODEL_KEY in delta:
        delta['model'] = delta.pop(METHOD_MODEL_KEY)
    return delta


def apply_overlays(cfg: Config, overlays: Sequence[str]) -> Config:
    """Merge the overlays into ``cfg`` (in place; returned), in order, as
    mmengine merges a child config into its base: dicts key by key, anything
    else (``custom_hooks``) replaced."""
    for name in overlays:
        cfg.merge_from_dict(overlay_delta(name), allow_list_keys=False)
    return cfg


def variant_name(base: str, variant: str) -> str:
    """The file name a variant's config gets (``<base>_<variant>.py``; the
    base's own for the baseline): the name of the family's leaf config for it
    where there is one, the name mmengine dumps the config under in a run's work
    dir."""
    stem = osp.splitext(osp.basename(base))[0]
    return f'{stem}.py' if variant == BASELINE else f'{stem}_{variant}.py'


def apply_variant(cfg: Config, base: str, variant: str) -> Config:
    """A new config: ``cfg`` (loaded from ``base``; not changed) with
    ``variant``'s overlays merged in, named by :func:`variant_name` next to
    ``base``."""
    check_variants([variant])
    overlays = VARIANTS[variant].overlays_for(cfg)
    cfg = apply_overlays(copy.deepcopy(cfg), overlays)
    text = '\n'.join([cfg.text] +
                     [f'# method overlay {overlay_path(name)}' for name in overlays])
    return Config(
        cfg.to_dict(),
        cfg_text=text,
        filename=osp.join(osp.dirname(osp.abspath(base)), variant_name(base, variant)),
        env_variables=cfg.env_variables)


def load_variant(base: str, variant: str) -> Config:
    """The config of ``variant`` of the family of ``base``.

    Args:
        base (str): The family's base config (its baseline), as a path or
            relative to the repository root.
        variant (str): A name of :data:`VARIANTS`.

    Raises:
        KeyError: An unknown variant name (the known ones are listed).
        FileNotFoundError: No such base config or overlay.
    """
    check_variants([variant])
    base = existing_config(base)
    return apply_variant(Config.fromfile(base), base, variant)


def ceiling_modality(variant: str) -> Optional[str]:
    """The modality a ceiling variant uses (None for the other variants)."""
    return CEILINGS.get(variant)


def stream_sources(variant: str) -> Tuple[str, ...]:
    """The ceiling variants whose same-seed runs give ``variant``'s streams
    their starting weights (none for most variants)."""
    entry = VARIANTS.get(variant)
    return entry.streams_from if entry is not None else ()


def expected_cost(variant: str) -> float:
    """Rough training cost of a variant relative to the baseline's (for the
    order of parallel runs)."""
    entry = VARIANTS.get(variant)
    return entry.cost if entry is not None else 1.0


__all__ = [
    'ROOT', 'METHODS_DIR', 'SYNTHETIC_CONFIG', 'SYNTHETIC_SEG_CONFIG',
    'METHOD_MODEL_KEY', 'Variant', 'VARIANTS', 'BASELINE', 'CEILINGS',
    'ANALYSIS_VARIANTS', 'existing_config', 'check_variants', 'overlay_path',
    'overlay_delta', 'apply_overlays', 'variant_name', 'apply_variant', 'load_variant',
    'ceiling_modality', 'stream_sources', 'expected_cost'
]

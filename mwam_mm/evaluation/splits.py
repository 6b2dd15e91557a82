"""Named splits of the test samples (day / night): :class:`SplitMetric` computes
any metric on all test samples and on each split; :func:`find_day_night_splits`
finds the splits a dataset lists."""
import copy
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Union

from mmengine.evaluator import BaseMetric
from mmengine.fileio import list_from_file
from mmengine.registry import METRICS

# sample keys that name it, matched against the split lists (the id as it is, the
# files by their name without folder and suffix)
_SAMPLE_ID_KEYS = ('img_id', )
_SAMPLE_FILE_KEYS = ('img_path', 'stacked_path', 'seg_map_path', 'thermal_path')


def sample_names(sample: dict) -> set:
    """The names a test sample answers to in a split list: its ``img_id`` and the
    stems of its files (``img_path``, ``stacked_path``, ...)."""
    names = {str(sample[k]) for k in _SAMPLE_ID_KEYS if sample.get(k) is not None}
    names |= {
        osp.splitext(osp.basename(str(sample[k])))[0]
        for k in _SAMPLE_FILE_KEYS if sample.get(k)
    }
    return names


def _read_list(value, owner: str) -> List[str]:
    if isinstance(value, str):
        if not osp.isfile(value):
            raise FileNotFoundError(f'{owner}: split list {value} not found')
        value = list_from_file(value)
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f'{owner}: a split is a list of sample names or the path of '
                        f'a file with one per line, got {type(value).__name__}')
    return [osp.splitext(str(v).strip())[0] for v in value if str(v).strip()]


@METRICS.register_module()
class SplitMetric(BaseMetric):
    """Any metric, computed on all test samples and on named splits of them.

    Wraps ``metric``: each batch goes to it, and each result it stores is
    tagged with its sample's names (:func:`sample_names`). The returned metrics
    are the wrapped metric's keys (``pascal_voc/mAP``) for all samples and
    ``{split}/{key}`` (``night/pascal_voc/mAP``) for each split with samples; one
    test pass gives all. Needs a metric that stores one result per sample
    (mmdet's VOCMetric and CocoMetric, mmseg's IoUMetric). mmdet's CocoMetric
    keeps the ground truth it built from the first call: it is reset between
    calls; a CocoMetric given an ``ann_file`` cannot be split (it scores every
    image of the file), which is refused.

    Args:
        metric (dict): The wrapped metric's config.
        splits (dict): ``{name: list of sample names, or the path of a file with
            one per line}``. A sample belongs to a split when its ``img_id`` or
            the name of one of its files (no folder, no suffix) is listed.
        collect_device (str): See ``BaseMetric``.
        collect_dir (str, optional): See ``BaseMetric``.
    """

    def __init__(self,
                 metric: dict,
                 splits: Dict[str, Union[str, Sequence[str]]],
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None):
        # a prefix keeps BaseMetric from warning; the keys are prefixed here
        super().__init__(collect_device, prefix='split', collect_dir=collect_dir)
        self.prefix = None
        if not isinstance(splits, dict) or not splits:
            raise ValueError('SplitMetric: splits must be a non-empty dict '
                             f'(name: sample names or list file), got {splits!r}')
        self.splits = {
            str(name): frozenset(_read_list(value, f'SplitMetric split {name!r}'))
            for name, value in splits.items()
        }
        self.metric = METRICS.build(metric)
        state = getattr(self.metric, '_coco_api', 'absent')
        if state not in ('absent', None):
            raise ValueError(
                f'SplitMetric: {type(self.metric).__name__} was given an ann_file; '
                'it then scores every image of that file, so it cannot be split. '
                'Drop its ann_file (it builds the ground truth from the samples)')
        self._resets_state = state is None

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        self.metric.dataset_meta = dataset_meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        before = len(self.metric.results)
        self.metric.process(data_batch, data_samples)
        new = self.metric.results[before:]
        del self.metric.results[before:]
        if len(new) != len(data_samples):
            raise RuntimeError(
                f'SplitMetric: {type(self.metric).__name__} stored {len(new)} '
                f'results for a batch of {len(data_samples)} samples; only a metric '
                'that stores one result per sample can be split')
        for sample, result in zip(data_samples, new):
            self.results.append((sorted(sample_names(sample)), result))

    def _compute(self, results: list) -> dict:
        if self._resets_state:  # CocoMetric: ground truth rebuilt for these
            for key in ('_coco_api', 'img_ids', 'cat_ids'):
                setattr(self.metric, key, None)
        metrics = self.metric.compute_metrics(list(results))
        prefix = self.metric.prefix
        return {f'{prefix}/{k}' if prefix else k: v for k, v in metrics.items()}

    def compute_metrics(self, results: list) -> dict:
        out = self._compute([r for _, r in results])
        for name, members in self.splits.items():
            part = [r for names, r in results if members.intersection(names)]
            if not part:
                warnings.warn(f'SplitMetric: no test sample is in split {name!r}; '
                              'it has no scores')
                continue
            out.update({f'{name}/{k}': v for k, v in self._compute(part).items()})
        return out


def _stems_of_folder(folder: str, suffix: str) -> List[str]:
    if not osp.isdir(folder):
        return []
    return sorted(f[:-len(suffix)] for f in os.listdir(folder) if f.endswith(suffix))


def find_day_night_splits(dataset: dict) -> Optional[Dict[str, List[str]]]:
    """Day and night lists of a test dataset config, where the dataset has them.

    Looked for in this order:

    - ``<split>_day.txt`` and ``<split>_night.txt`` next to the dataset's
      ``ann_file`` (MFNet's ``test_day.txt`` / ``test_night.txt``);
    - ``night_<split>.txt`` in ``data_root``, ``<split>`` the last folder of
      ``data_prefix['img']`` (the synthetic data: ``night_test.txt``); day is the
      rest of the split (the ``ann_file``'s names, or the image folder's);
    - an ``MFNetDataset`` whose names all end in ``D`` or ``N`` (MFNet's own
      naming: ``00001D``, ``01234N``).

    KAIST is not listed here: ``KAISTMissRate`` reports day and night itself.

    Args:
        dataset (dict): The test dataset's config (``data_root``, ``ann_file``,
            ``data_prefix``, ``type``).

    Returns:
        dict | None: ``{'day': [names], 'night': [names]}``, or None.
    """
    root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file') or ''
    if ann_file and not osp.isabs(ann_file):
        ann_file = osp.join(root, ann_file)
    prefix = dataset.get('data_prefix') or {}
    if ann_file:
        base = osp.splitext(ann_file)[0]
        day, night = f'{base}_day.txt', f'{base}_night.txt'
        if osp.isfile(day) and osp.isfile(night):
            return dict(
                day=_read_list(day, 'day list'), night=_read_list(night, 'night list'))
    img = prefix.get('img') or prefix.get('img_path') or ''
    split = osp.basename(osp.normpath(img)) if img else ''
    night_file = osp.join(root, f'night_{split}.txt')
    if split and osp.isfile(night_file):
        if ann_file and osp.isfile(ann_file):
            names = _read_list(ann_file, 'split file')
        else:
            names = _stems_of_folder(
                osp.join(root, img), dataset.get('img_suffix', '.jpg'))
        night = set(_read_list(night_file, 'night list'))
        return dict(
            day=[n for n in names if n not in night],
            night=[n for n in names if n in night])
    if str(dataset.get('type', '')).split('.')[-1] == 'MFNetDataset' and \
            ann_file and osp.isfile(ann_file):
        names = _read_list(ann_file, 'split file')
        if names and all(n[-1:] in ('D', 'N') for n in names):
            return dict(
                day=[n for n in names if n.endswith('D')],
                night=[n for n in names if n.endswith('N')])
    return None


def wrap_evaluator(evaluator, splits: Optional[dict]):
    """The evaluator config with each metric wrapped in :class:`SplitMetric`."""
    if not splits:
        return copy.deepcopy(evaluator)
    if isinstance(evaluator, (list, tuple)):
        return [wrap_evaluator(m, splits) for m in evaluator]
    evaluator = copy.deepcopy(dict(evaluator))
    if str(evaluator.get('type', '')).split('.')[-1] == 'Evaluator':
        evaluator['metrics'] = wrap_evaluator(evaluator['metrics'], splits)
        return evaluator
    return dict(type='SplitMetric', metric=evaluator, splits=dict(splits))

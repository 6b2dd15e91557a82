"""KAIST log-average miss rate: the Caltech pedestrian protocol as KAIST runs it.

Protocol: P. Dollar, C. Wojek, B. Schiele, P. Perona, *Pedestrian Detection: An
Evaluation of the State of the Art*, PAMI 2012 (the evaluation of Dollar's toolbox,
``bbGt`` ``evalRes``/``compRoc``), with the settings of S. Hwang et al., *Multispectral
Pedestrian Detection: Benchmark Dataset and Baseline*, CVPR 2015 (the KAIST
benchmark's evaluation code). Per setting and frame:

1. **Ground truth.** Only labels ``person`` (positive) and ``people``, ``person?``,
   ``cyclist`` (ignore labels) are used; other labels are dropped. A box becomes an
   *ignore region* if its label is an ignore label, the file marks it ``ign``, its
   height ``h`` is outside the setting's range, its occlusion level is not one of
   the setting's, or either x end (``x``, ``x + w``) lies outside ``[5, 635]`` or
   either y end outside ``[5, 507]`` (the KAIST bounds for 640x512 frames).
2. **Matching** (``evalRes``): detections in descending score order; ground truth
   with the regular boxes first. Overlap with a regular box is IoU; with an ignore
   region it is ``area(intersection) / area(detection)`` (a detection may match any
   part of an ignore region). A detection takes the unmatched regular box of
   highest overlap ``>= 0.5``; only when there is none, the ignore region of
   highest overlap ``>= 0.5``. Regular boxes match at most once, ignore regions any
   number of times. Detections matched to ignore regions and ignore regions
   themselves are left out of the counts: they are neither true nor false
   positives, nor misses.
3. **Curve** (``compRoc``): all frames' remaining detections sorted by score;
   after each one, FPPI = false positives / number of frames and recall = true
   positives / number of regular boxes.
4. **Log-average miss rate**: at nine reference FPPI values ``f_i = 10^(-2 +
   i / 4)``, ``i = 0..8`` (evenly spaced in log space over ``[1e-2, 1]``), the miss
   rate ``m_i = 1 - recall`` of the last curve point with FPPI ``<= f_i`` (``1``
   when there is none); ``MR = exp(mean_i(log(max(m_i, 1e-10))))``. So a perfect
   detector scores ``1e-10``, no detections ``1``. Reported as a fraction (papers
   print it in percent).

Default settings: ``reasonable`` (height >= 55 px, occlusion none or partial; the
KAIST benchmark's headline number, Hwang et al. 2015) and ``all`` (height >= 20 px,
any occlusion; the "All" setting of the KAIST leaderboard's evaluation, Kim et al.,
*MLPD*, RA-L 2021).
KAIST's own evaluation, unlike Caltech's, neither standardises box aspect ratios
nor filters detections by height, and neither is done here.
"""
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.registry import METRICS

from ..datasets.kaist import KAIST_IGNORE_LABELS, frame_condition

#: Nine reference FPPI values, 10^-2 ... 10^0 evenly spaced in log space.
FPPI_POINTS = tuple(np.logspace(-2, 0, 9).tolist())
#: KAIST's bounds (x1, y1, x2, y2) for 640x512 frames: ends outside are ignored.
KAIST_BOUNDS = (5.0, 5.0, 635.0, 507.0)
DEFAULT_SETTINGS = dict(
    reasonable=dict(height=(55, math.inf), occlusion=(0, 1)),
    all=dict(height=(20, math.inf), occlusion=(0, 1, 2)))
#: Miss rates below this are clamped before the logarithm (the protocol's 1e-10).
MIN_MISS_RATE = 1e-10


def overlaps(dets: np.ndarray, gts: np.ndarray, gt_ignore: np.ndarray) -> np.ndarray:
    """Overlap of each detection with each ground-truth box (bbGt ``compOas``).

    Args:
        dets (np.ndarray): ``(m, 4)`` boxes ``[x, y, w, h]``.
        gts (np.ndarray): ``(n, 4)`` boxes ``[x, y, w, h]``.
        gt_ignore (np.ndarray): ``(n,)`` bool, True for ignore regions.

    Returns:
        np.ndarray: ``(m, n)``: IoU for regular boxes; intersection over the
        detection's area for ignore regions.
    """
    dets = np.asarray(dets, np.float64).reshape(-1, 4)
    gts = np.asarray(gts, np.float64).reshape(-1, 4)
    d1, d2 = dets[:, None, :2], dets[:, None, :2] + dets[:, None, 2:]
    g1, g2 = gts[None, :, :2], gts[None, :, :2] + gts[None, :, 2:]
    extent = np.minimum(d2, g2) - np.maximum(d1, g1)  # (m, n, 2): width, height
    iw, ih = extent[..., 0], extent[..., 1]
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    det_area = (dets[:, 2] * dets[:, 3])[:, None]
    union = np.where(
        np.asarray(gt_ignore, bool)[None, :], det_area,
        det_area + (gts[:, 2] * gts[:, 3])[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def match_frame(gts: np.ndarray,
                dets: np.ndarray,
                iou_thr: float = 0.5) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match one frame's detections to its ground truth (bbGt ``evalRes``).

    Args:
        gts (np.ndarray): ``(n, 5)`` rows ``[x, y, w, h, ignore]``.
        dets (np.ndarray): ``(m, 5)`` rows ``[x, y, w, h, score]``.
        iou_thr (float): Overlap a match needs (``>=``).

    Returns:
        tuple: ``gt_match`` ``(n,)`` in the ground truth's order (1 matched, 0
        missed, -1 ignore region), and the detections sorted by descending score:
        ``scores`` ``(m,)`` and ``det_match`` ``(m,)`` (1 true positive, 0 false
        positive, -1 matched to an ignore region).
    """
    gts = np.asarray(gts, np.float64).reshape(-1, 5)
    dets = np.asarray(dets, np.float64).reshape(-1, 5)
    gt_order = np.argsort(gts[:, 4], kind='stable')  # regular boxes first
    det_order = np.argsort(-dets[:, 4], kind='stable')
    gts, dets = gts[gt_order], dets[det_order]
    gt_state = np.where(gts[:, 4] > 0, -1, 0)
    det_match = np.zeros(len(dets), np.int64)
    oa = overlaps(dets[:, :4], gts[:, :4], gt_state == -1)
    for d in range(len(dets)):
        if not len(gts) or oa[d].max() < iou_thr:
            continue  # nothing to match: a false positive
        best_oa, best_g, best_m = iou_thr, -1, 0
        for g in range(len(gts)):
            if gt_state[g] == 1:
                continue  # a regular box matches once
            if best_m != 0 and gt_state[g] == -1:
                break  # matched a regular box: ignore regions come after them
            if oa[d, g] < best_oa:
                continue
            best_oa, best_g = oa[d, g], g
            best_m = 1 if gt_state[g] == 0 else -1
        if best_m == 1:
            gt_state[best_g] = 1
        det_match[d] = best_m
    gt_match = np.empty_like(gt_state)
    gt_match[gt_order] = gt_state
    return gt_match, dets[:, 4].copy(), det_match


def log_average_miss_rate(
        scores: np.ndarray,
        det_match: np.ndarray,
        num_positives: int,
        num_frames: int,
        fppi_points: Sequence[float] = FPPI_POINTS) -> Tuple[float, np.ndarray]:
    """Log-average miss rate of matched detections over several frames.

    bbGt ``compRoc`` followed by the Caltech summary (see the module docstring).

    Args:
        scores (np.ndarray): Scores of every detection of every frame.
        det_match (np.ndarray): Their matches (1, 0, -1 as :func:`match_frame`);
            -1 (matched to an ignore region) are left out.
        num_positives (int): Regular ground-truth boxes of those frames.
        num_frames (int): Frames evaluated (the FPPI denominator).
        fppi_points (Sequence[float]): Reference FPPI values.

    Returns:
        tuple: The log-average miss rate (nan without positives) and the miss
        rate at each reference point.
    """
    points = np.asarray(fppi_points, np.float64)
    if num_positives <= 0 or num_frames <= 0:
        return math.nan, np.full(len(points), math.nan)
    scores = np.asarray(scores, np.float64).reshape(-1)
    det_match = np.asarray(det_match).reshape(-1)
    keep = det_match != -1
    scores, true_pos = scores[keep], det_match[keep] == 1
    order = np.argsort(-scores, kind='stable')
    true_pos = true_pos[order]
    fppi = np.concatenate([[-np.inf], np.cumsum(~true_pos) / num_frames])
    recall = np.concatenate([[0.0], np.cumsum(true_pos) / num_positives])
    # the last curve point at or below each reference FPPI (fppi never decreases)
    last = np.searchsorted(fppi, points, side='right') - 1
    miss = 1.0 - recall[last]
    lamr = float(np.exp(np.mean(np.log(np.maximum(miss, MIN_MISS_RATE)))))
    return lamr, miss


def _numpy(value) -> np.ndarray:
    value = getattr(value, 'tensor', value)  # mmdet's box types
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@METRICS.register_module()
class KAISTMissRate(BaseMetric):
    """Log-average miss rate on KAIST (Caltech protocol, KAIST settings).

    What is computed is described in this module's docstring. Reports
    ``kaist/MR_<setting>`` for each setting (``MR_reasonable``, ``MR_all`` by
    default) and, with ``day_night`` and frames of both kinds (sets 00-02 and
    06-08 by day, 03-05 and 09-11 by night), ``MR_<setting>_day`` and
    ``MR_<setting>_night``. A setting without any regular box gives nan. Lower
    is better: the robustness summaries (collapse rate, fractions of a
    reference, robustness scores) read these keys the other way round
    (:func:`mwam_mm.evaluation.lower_is_better`).

    Ground truth comes from each data sample's ``kaist_objects`` (set by
    :class:`mwam_mm.datasets.KAISTDataset`; add ``'kaist_objects'`` to the test
    pipeline's ``PackDetInputs`` ``meta_keys``): labels, unclipped boxes,
    occlusion levels and the files' ignore flags. Without it, the sample's
    ``gt_instances`` (class ``pred_class`` as ``person``) and ``ignored_instances``
    (ignore regions) are used, every box counted as unoccluded, with a warning.

    Predictions are the samples' ``pred_instances`` (``bboxes`` ``x1, y1, x2,
    y2``, ``scores``, ``labels``) of class ``pred_class``, in the original image's
    pixels, as mmdet's detectors return them at test time (``predict(rescale=
    True)``, which divides by the sample's ``scale_factor``) and mmdet's metrics
    take them. For predictions made with ``rescale=False``, set
    ``preds_in_input_scale=True``: they are divided by ``scale_factor`` here.

    Args:
        settings (dict, optional): ``name -> dict(height=(min, max), occlusion=
            levels)``, heights in pixels (inclusive; a max of None is no limit),
            levels among 0 (none), 1 (partial), 2 (heavy). Defaults to
            ``DEFAULT_SETTINGS``.
        iou_thr (float): Overlap a match needs. Defaults to 0.5.
        bounds (tuple, optional): ``(x1, y1, x2, y2)``: boxes with an end outside
            become ignore regions. Defaults to KAIST's ``(5, 5, 635, 507)``; None
            turns the check off.
        fppi_range (tuple): Reference FPPI range. Defaults to ``(1e-2, 1)``.
        num_fppi_points (int): Reference points, log-spaced. Defaults to 9.
        positive_labels (Sequence[str]): Ground-truth labels that count.
        ignore_labels (Sequence[str]): Labels that become ignore regions.
        pred_class (str): The class (of the dataset's ``classes``) whose
            predictions are pedestrians. Defaults to ``'person'``.
        day_night (bool): Also report day and night frames. Defaults to True.
        preds_in_input_scale (bool): Predictions are in the resized input's
            pixels. Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Defaults to ``'kaist'``.
    """

    default_prefix: Optional[str] = 'kaist'

    def __init__(self,
                 settings: Optional[Dict[str, dict]] = None,
                 iou_thr: float = 0.5,
                 bounds: Optional[Sequence[float]] = KAIST_BOUNDS,
                 fppi_range: Sequence[float] = (1e-2, 1.0),
                 num_fppi_points: int = 9,
                 positive_labels: Sequence[str] = ('person', ),
                 ignore_labels: Sequence[str] = KAIST_IGNORE_LABELS,
                 pred_class: str = 'person',
                 day_night: bool = True,
                 preds_in_input_scale: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.settings = self._check_settings(DEFAULT_SETTINGS if settings is
                                             None else settings)
        if not 0 < iou_thr <= 1:
            raise ValueError(f'KAISTMissRate: iou_thr must be in (0, 1], got {iou_thr}')
        self.iou_thr = float(iou_thr)
        if bounds is not None and len(bounds) != 4:
            raise ValueError('KAISTMissRate: bounds must be (x1, y1, x2, y2) or None, '
                             f'got {bounds!r}')
        self.bounds = None if bounds is None else tuple(float(b) for b in bounds)
        low, high = fppi_range
        if not 0 < low < high or num_fppi_points < 1:
            raise ValueError('KAISTMissRate: fppi_range must be 0 < low < high and '
                             f'num_fppi_points >= 1, got {fppi_range!r}, '
                             f'{num_fppi_points}')
        self.fppi_points = tuple(
            np.logspace(math.log10(low), math.log10(high), num_fppi_points).tolist())
        for name, labels in (('positive_labels', positive_labels), ('ignore_labels',
                                                                    ignore_labels)):
            if isinstance(labels, str):
                raise TypeError(f'KAISTMissRate: {name} must be a tuple of labels, '
                                f'got the string {labels!r}')
        self.positive_labels = tuple(positive_labels)
        self.ignore_labels = tuple(ignore_labels)
        self.pred_class = pred_class
        self.day_night = day_night
        self.preds_in_input_scale = preds_in_input_scale

    @staticmethod
    def _check_settings(settings: Dict[str, dict]) -> Dict[str, dict]:
        if not isinstance(settings, dict) or not settings:
            raise TypeError(
                'KAISTMissRate: settings must be a non-empty dict of '
                f'name -> dict(height=..., occlusion=...), got {settings!r}')
        checked = {}
        for name, setting in settings.items():
            unknown = set(setting) - {'height', 'occlusion'}
            if unknown:
                raise ValueError(f'KAISTMissRate: setting {name!r} has unknown keys '
                                 f'{sorted(unknown)} (known: height, occlusion)')
            low, high = setting.get('height', (0, None))
            high = math.inf if high is None else high  # configs have no math.inf
            levels = tuple(setting.get('occlusion', (0, 1, 2)))
            if not set(levels) <= {0, 1, 2} or not levels:
                raise ValueError(f'KAISTMissRate: setting {name!r}: occlusion levels '
                                 f'must be among 0, 1, 2, got {levels!r}')
            checked[name] = dict(height=(float(low), float(high)), occlusion=levels)
        return checked

    def _pred_label(self) -> int:
        classes = (self.dataset_meta or {}).get('classes')
        if not classes:
            return 0
        if self.pred_class not in classes:
            raise ValueError(f'KAISTMissRate: pred_class {self.pred_class!r} is not '
                             f'among the dataset classes {tuple(classes)}')
        return list(classes).index(self.pred_class)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each frame's pedestrian detections and ground-truth objects."""
        label = self._pred_label()
        for sample in data_samples:
            pred = sample['pred_instances']
            boxes = _numpy(pred['bboxes']).astype(np.float64).reshape(-1, 4)
            scores = _numpy(pred['scores']).astype(np.float64).reshape(-1)
            keep = _numpy(pred['labels']).reshape(-1) == label
            boxes, scores = boxes[keep], scores[keep]
            if self.preds_in_input_scale:
                # mmdet's scale_factor is (w_scale, h_scale)
                scale = np.asarray(sample['scale_factor'], np.float64).reshape(-1)
                boxes = boxes / np.resize(scale[:2], 4)
            dets = np.zeros((len(boxes), 5))
            dets[:, :2] = boxes[:, :2]
            dets[:, 2:4] = boxes[:, 2:4] - boxes[:, :2]
            dets[:, 4] = scores
            objects, from_instances = sample.get('kaist_objects'), False
            if objects is None:
                objects, from_instances = self._objects_from_instances(sample,
                                                                       label), True
            self.results.append(
                dict(
                    img_id=sample.get('img_id'),
                    dets=dets,
                    objects=[(o['label'], *[float(v) for v in o['bbox']],
                              int(o['occlusion']), int(o['ignore'])) for o in objects],
                    from_instances=from_instances))

    @staticmethod
    def _objects_from_instances(sample: dict, label: int) -> List[dict]:
        if 'gt_instances' not in sample:
            raise KeyError(
                f'KAISTMissRate: the data sample of {sample.get("img_id")!r} has '
                "neither 'kaist_objects' (add it to PackDetInputs' meta_keys) nor "
                'gt_instances (load annotations in the test pipeline)')
        objects = []
        for key, ignore in (('gt_instances', 0), ('ignored_instances', 1)):
            instances = sample.get(key)
            if not instances or 'bboxes' not in instances:
                continue
            boxes = _numpy(instances['bboxes']).astype(np.float64).reshape(-1, 4)
            labels = _numpy(instances['labels']).reshape(-1)
            for (x1, y1, x2, y2), lab in zip(boxes, labels):
                if lab != label and not ignore:
                    continue  # another class: not a pedestrian
                objects.append(
                    dict(
                        label='person',
                        bbox=[x1, y1, x2 - x1, y2 - y1],
                        occlusion=0,
                        ignore=ignore))
        return objects

    def _ground_truth(self, objects: List[tuple], setting: dict) -> np.ndarray:
        """``(n, 5)`` ``[x, y, w, h, ignore]`` of one frame under one setting."""
        low, high = setting['height']
        rows = []
        for label, x, y, w, h, occlusion, ignore in objects:
            if label in self.ignore_labels:
                ignore = 1
            elif label not in self.positive_labels:
                continue  # the protocol drops labels it does not know
            if self.bounds is not None:
                bx1, by1, bx2, by2 = self.bounds
                if not (bx1 <= x <= bx2 and bx1 <= x + w <= bx2 and by1 <= y <= by2
                        and by1 <= y + h <= by2):
                    ignore = 1
            if not low <= h <= high or occlusion not in setting['occlusion']:
                ignore = 1
            rows.append([x, y, w, h, ignore])
        return np.asarray(rows, np.float64).reshape(-1, 5)

    def _subsets(self, results: List[dict]) -> Dict[str, List[int]]:
        subsets = {'': list(range(len(results)))}
        if self.day_night:
            kinds = [frame_condition(r['img_id']) for r in results]
            day = [i for i, k in enumerate(kinds) if k == 'day']
            night = [i for i, k in enumerate(kinds) if k == 'night']
            if day and night:  # with one kind only, it equals the whole
                subsets.update(_day=day, _night=night)
        return subsets

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """``MR_<setting>[_day|_night]`` from the kept frames."""
        fallback = sum(r['from_instances'] for r in results)
        if fallback:
            print_log(
                f'KAISTMissRate: {fallback} of {len(results)} frames carry no '
                "'kaist_objects' (add it to PackDetInputs' meta_keys, as "
                'configs/_base_/datasets/kaist.py does): their ground truth was '
                'taken from gt_instances and ignored_instances, every box as '
                'unoccluded, so occlusion filters did not apply to them',
                logger='current',
                level=logging.WARNING)
        subsets = self._subsets(results)
        metrics, lines = {}, []
        for name, setting in self.settings.items():
            frames = []
            for r in results:
                gt_match, scores, det_match = match_frame(
                    self._ground_truth(r['objects'], setting), r['dets'], self.iou_thr)
                frames.append((int(np.sum(gt_match != -1)), scores, det_match))
            for suffix, indices in subsets.items():
                chosen = [frames[i] for i in indices]
                positives = sum(f[0] for f in chosen)
                lamr, _ = log_average_miss_rate(
                    np.concatenate([f[1] for f in chosen]),
                    np.concatenate([f[2] for f in chosen]), positives, len(chosen),
                    self.fppi_points)
                metrics[f'MR_{name}{suffix}'] = lamr
                lines.append(f'{name + suffix:<20} {lamr * 100:8.2f} %  '
                             f'({len(chosen)} frames, {positives} pedestrians)')
                if positives == 0:
                    print_log(
                        f'KAISTMissRate: no pedestrian of setting {name!r} in '
                        f'the {len(chosen)} {suffix[1:] or "evaluated"} frames: '
                        'its miss rate is undefined (nan)',
                        logger='current',
                        level=logging.WARNING)
        print_log(
            'KAIST log-average miss rate (FPPI 1e-2 to 1e0):\n' + '\n'.join(lines),
            logger='current')
        return metrics

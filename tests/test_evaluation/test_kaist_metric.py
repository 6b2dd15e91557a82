"""KAISTMissRate against miss rates worked out by hand (Caltech / KAIST protocol).

Reference points: FPPI f_i = 10^(-2 + i/4), i = 0..8 (0.01, 0.0178, 0.0316, 0.0562,
0.1, 0.178, 0.316, 0.562, 1). The miss rate at f_i is 1 - recall of the last curve
point with FPPI <= f_i; MR = exp(mean(log(max(miss, 1e-10)))).
"""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import METRICS

import mwam_mm  # noqa: F401
from mwam_mm.datasets import KAISTDataset
from mwam_mm.evaluation import KAISTMissRate
from mwam_mm.evaluation.kaist_metric import (FPPI_POINTS, log_average_miss_rate,
                                             match_frame, overlaps)
from tests.conftest import DATA

KAIST = osp.join(DATA, 'kaist_mini')
# miss 0 everywhere: exp(mean(log(1e-10))), 1e-10 up to rounding
PERFECT = pytest.approx(1e-10, rel=1e-9)


def mr(*parts):
    """exp(mean(log(miss))) over the 9 points, from (miss, count) pairs."""
    assert sum(n for _, n in parts) == 9
    return math.exp(sum(n * math.log(max(m, 1e-10)) for m, n in parts) / 9)


def obj(label, x, y, w, h, occlusion=0, ignore=0):
    return dict(label=label, bbox=[x, y, w, h], occlusion=occlusion, ignore=ignore)


def det(x, y, w, h, score, label=0):
    return (x, y, x + w, y + h, score, label)


def sample(img_id, objects, dets, **extra):
    rows = np.asarray(dets, np.float32).reshape(-1, 6)
    return dict(
        img_id=img_id,
        kaist_objects=objects,
        pred_instances=dict(
            bboxes=torch.from_numpy(rows[:, :4]),
            scores=torch.from_numpy(rows[:, 4]),
            labels=torch.from_numpy(rows[:, 5]).long()),
        **extra)


def evaluate(samples, **kwargs):
    metric = KAISTMissRate(**kwargs)
    metric.dataset_meta = dict(classes=('person', ))
    metric.process({}, samples)
    return metric.evaluate(len(samples))


# --- the building blocks ---------------------------------------------------------


def test_reference_points():
    assert np.allclose(FPPI_POINTS, [10**(-2 + i / 4) for i in range(9)], rtol=0)
    assert FPPI_POINTS[0] == 0.01 and FPPI_POINTS[-1] == 1.0


def test_overlap_is_iou_for_boxes_and_intersection_over_detection_for_ignore():
    dets = [[10, 10, 10, 10]]
    gts = [[10, 10, 20, 20], [10, 10, 20, 20], [40, 40, 5, 5]]
    oa = overlaps(dets, gts, np.array([False, True, False]))
    assert np.allclose(oa, [[100 / 400, 1.0, 0.0]])


def test_matching_follows_evalres():
    # gt order: regular boxes first; two regular pedestrians and an ignore region
    gts = np.array([[100, 100, 20, 50, 1], [0, 0, 20, 50, 0], [50, 0, 20, 50, 0]])
    dets = np.array([
        [0, 0, 20, 50, 0.5],  # exact on gt 1, but scored lower than the next
        [2, 0, 20, 50, 0.9],  # IoU 0.9 with gt 1: takes it first
        [50, 0, 20, 50, 0.2],  # exact on gt 2
        [50, 0, 20, 50, 0.1],  # gt 2 taken: a false positive
        [105, 110, 10, 20, 0.3],  # inside the ignore region: neither TP nor FP
        [200, 200, 20, 50, 0.4],  # nothing there: a false positive
    ])
    gt_match, scores, det_match = match_frame(gts, dets)
    assert gt_match.tolist() == [-1, 1, 1]
    assert scores.tolist() == [0.9, 0.5, 0.4, 0.3, 0.2, 0.1]
    # 0.5 lost gt 1 to 0.9 and overlaps nothing else: false positive
    assert det_match.tolist() == [1, 0, 0, -1, 1, 0]


def test_matching_prefers_a_regular_box_over_a_better_ignore_region():
    gts = np.array([[0, 0, 100, 100, 1], [0, 0, 20, 40, 0]])  # ignore first in input
    dets = np.array([[0, 0, 20, 50, 0.9], [0, 0, 20, 50, 0.8]])
    # det 0: IoU 0.8 with the pedestrian, 1.0 with the ignore region -> TP;
    # det 1: the pedestrian is taken -> it matches the ignore region (ignored)
    gt_match, _, det_match = match_frame(gts, dets)
    assert gt_match.tolist() == [-1, 1] and det_match.tolist() == [1, -1]
    # below 0.5 nothing matches
    _, _, det_match = match_frame(gts[1:], np.array([[0, 20, 20, 40, 1.0]]))
    assert det_match.tolist() == [0]  # IoU 20*20 / (800+800-400) = 1/3


def test_log_average_miss_rate_by_hand():
    # 4 pedestrians in 2 frames; TP FP TP FP: FPPI 0, .5, .5, 1; recall .25 .25 .5 .5
    lamr, miss = log_average_miss_rate(
        np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]), 4, 2)
    assert np.allclose(miss, [0.75] * 7 + [0.5] * 2)
    assert lamr == pytest.approx(mr((0.75, 7), (0.5, 2)))
    assert lamr == pytest.approx(0.75**(7 / 9) * 0.5**(2 / 9))
    # ignored detections (-1) are left out entirely
    lamr2, _ = log_average_miss_rate(
        np.array([0.95, 0.9, 0.8, 0.7, 0.6]), np.array([-1, 1, 0, 1, 0]), 4, 2)
    assert lamr2 == lamr
    # perfect, none, no positives
    assert log_average_miss_rate(np.ones(4), np.ones(4), 4, 2)[0] == PERFECT
    assert log_average_miss_rate(np.zeros(0), np.zeros(0), 4, 2)[0] == 1.0
    assert math.isnan(log_average_miss_rate(np.ones(1), np.zeros(1), 0, 2)[0])


def test_a_point_exactly_at_a_reference_fppi_counts():
    # 100 frames: the first false positive gives FPPI 0.01 = the first reference;
    # the TP after it (same FPPI) counts there: "at or below"
    _, miss = log_average_miss_rate(
        np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]), 2, 100)
    assert miss.tolist() == [0.0] * 9


# --- a small hand-made case ------------------------------------------------------

# frame A (set06, day): two pedestrians and a group ('people', an ignore label)
A = [
    obj('person', 100, 100, 41, 100),
    obj('person', 300, 100, 41, 100),
    obj('people', 400, 200, 100, 100)
]
# frame B (set09, night): partial (reasonable), heavy and 40 px tall (both only in
# 'all': height >= 20, any occlusion)
B = [
    obj('person', 100, 150, 41, 100, occlusion=1),
    obj('person', 300, 150, 41, 100, occlusion=2),
    obj('person', 500, 300, 16, 40)
]


def hand_made(dets_a, dets_b, **kwargs):
    return evaluate([
        sample('set06/V000/I00019', A, dets_a),
        sample('set09/V000/I00019', B, dets_b)
    ], **kwargs)


def test_hand_made_perfect_and_no_detections():
    perfect = hand_made([det(100, 100, 41, 100, 0.9),
                         det(300, 100, 41, 100, 0.8)], [
                             det(100, 150, 41, 100, 0.7),
                             det(300, 150, 41, 100, 0.6),
                             det(500, 300, 16, 40, 0.5)
                         ])
    assert set(perfect) == {
        'kaist/MR_reasonable', 'kaist/MR_reasonable_day', 'kaist/MR_reasonable_night',
        'kaist/MR_all', 'kaist/MR_all_day', 'kaist/MR_all_night'
    }
    assert all(v == PERFECT for v in perfect.values())  # miss 0 is clamped to 1e-10
    none = hand_made([], [])
    assert all(v == 1.0 for v in none.values())


def test_hand_made_in_between():
    dets_a = [
        det(100, 100, 41, 100, 0.9),  # TP
        det(420, 220, 40, 60, 0.85),  # inside 'people': IoU .24 but ignored
        det(550, 10, 41, 100, 0.8),  # FP
        det(100, 100, 41, 100, 0.5),  # duplicate on a matched pedestrian: FP
    ]
    dets_b = [
        det(300, 150, 41, 100, 0.95),  # heavy: ignored (reasonable), TP (all)
        det(104, 150, 41, 100, 0.7),  # IoU 3700/4500 with the partial one: TP
        det(550, 10, 41, 100, 0.6),  # FP
    ]
    got = hand_made(dets_a, dets_b)
    # reasonable: 3 pedestrians, 2 frames; TP FP TP FP FP -> FPPI 0 .5 .5 1 1.5,
    # recall 1/3 1/3 2/3 2/3 2/3: miss 2/3 up to 0.316, 1/3 at 0.562 and 1
    assert got['kaist/MR_reasonable'] == pytest.approx(mr((2 / 3, 7), (1 / 3, 2)))
    # all: 5 pedestrians; TP TP FP TP FP FP -> FPPI 0 0 .5 .5 1 1.5,
    # recall .2 .4 .4 .6 .6 .6: miss .6 up to 0.316, .4 at 0.562 and 1
    assert got['kaist/MR_all'] == pytest.approx(mr((0.6, 7), (0.4, 2)))
    # day (frame A alone): 2 pedestrians; TP FP FP -> FPPI 0 1 2: recall .5
    assert got['kaist/MR_reasonable_day'] == pytest.approx(0.5)
    # night (frame B): 1 pedestrian found before its only FP: miss 0
    assert got['kaist/MR_reasonable_night'] == PERFECT
    # without day/night only the settings
    assert set(hand_made(dets_a, dets_b,
                         day_night=False)) == {'kaist/MR_reasonable', 'kaist/MR_all'}


def test_only_the_pedestrian_class_counts_and_input_scale_is_undone():
    dets_a = [det(100, 100, 41, 100, 0.9), det(550, 10, 41, 100, 0.8, label=1)]
    metric = KAISTMissRate()
    metric.dataset_meta = dict(classes=('person', 'car'))
    metric.process({}, [sample('set06/V000/I00019', A, dets_a)])
    # the 'car' detection does not count: 1 of 2 found, no FP -> miss .5
    assert metric.evaluate(1)['kaist/MR_reasonable'] == pytest.approx(0.5)
    # predictions in a 2x input's pixels, divided by scale_factor
    halved = evaluate([
        sample(
            'set06/V000/I00019',
            A, [det(200, 200, 82, 200, 0.9)],
            scale_factor=(2.0, 2.0))
    ],
                      preds_in_input_scale=True)
    assert halved['kaist/MR_reasonable'] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pred_class 'person' is not among"):
        metric.dataset_meta = dict(classes=('car', ))
        metric.process({}, [sample('set06/V000/I00019', A, dets_a)])


def test_bounds_and_the_files_ignore_flag():
    objects = [
        obj('person', 2, 100, 41, 100),  # x < 5: outside KAIST's bounds
        obj('person', 200, 100, 41, 100, ignore=1),  # the file's ign flag
        obj('person?', 300, 100, 41, 100),
        obj('dog', 400, 100, 41, 100),  # unknown to the protocol: dropped
    ]
    dets = [
        det(2, 100, 41, 100, 0.9),
        det(200, 100, 41, 100, 0.8),
        det(300, 100, 41, 100, 0.7),
        det(400, 100, 41, 100, 0.6)
    ]
    got = evaluate([sample('x', objects, dets)])
    assert math.isnan(got['kaist/MR_reasonable'])  # no pedestrian left
    got = evaluate([sample('x', objects, dets)], bounds=None)
    # the first is a pedestrian now: TP; the 'dog' detection is a FP at FPPI 1
    assert got['kaist/MR_reasonable'] == PERFECT


def test_registered_with_the_kaist_prefix_and_options_checked():
    metric = METRICS.build(dict(type='KAISTMissRate'))
    assert isinstance(metric, KAISTMissRate) and metric.prefix == 'kaist'
    custom = KAISTMissRate(
        settings=dict(near=dict(height=(115, None), occlusion=(0, ))))
    assert custom.settings == dict(near=dict(height=(115, math.inf), occlusion=(0, )))
    with pytest.raises(ValueError, match="setting 'x' has unknown keys"):
        KAISTMissRate(settings=dict(x=dict(hight=(1, 2))))
    with pytest.raises(ValueError, match='occlusion levels must be among 0, 1, 2'):
        KAISTMissRate(settings=dict(x=dict(occlusion=(3, ))))
    with pytest.raises(ValueError, match='iou_thr must be in'):
        KAISTMissRate(iou_thr=0)
    with pytest.raises(TypeError, match='ignore_labels must be a tuple'):
        KAISTMissRate(ignore_labels='people')


# --- the real annotation format -----------------------------------------------------


@pytest.fixture(scope='module')
def real_frames():
    """kaist_mini's four frames (set06 day, set09 night) as the dataset reads them."""
    ds = KAISTDataset(
        data_root=KAIST,
        ann_file='imageSets/test-mini.txt',
        test_mode=True,
        pipeline=[])
    return {
        ds.get_data_info(i)['img_id']: ds.get_data_info(i)['kaist_objects']
        for i in range(len(ds))
    }


def on_real(frames, dets):
    return evaluate(
        [sample(i, objects, dets.get(i, [])) for i, objects in frames.items()])


def test_real_format_perfect_and_no_detections(real_frames):
    # a detection on every 'person' box inside the bounds (not the one past the
    # border, not the one the file marks ign)
    perfect = {
        'set06/V000/I00019': [det(100, 100, 41, 100, 0.9),
                              det(300, 100, 41, 100, 0.9)],
        'set06/V000/I00039': [det(200, 150, 30, 70, 0.9)],
        'set09/V000/I00019': [
            det(100, 150, 41, 100, 0.9),
            det(300, 150, 41, 100, 0.9),
            det(500, 300, 16, 40, 0.9)
        ],
    }
    assert all(v == PERFECT for v in on_real(real_frames, perfect).values())
    assert all(v == 1.0 for v in on_real(real_frames, {}).values())


def test_real_format_in_between(real_frames):
    dets = {
        'set06/V000/I00019': [
            det(100, 100, 41, 100, 0.9),  # TP
            det(550, 10, 41, 100, 0.8),  # FP
            det(420, 220, 40, 60, 0.85),  # inside 'people': ignored
        ],
        'set06/V000/I00039': [
            det(630, 200, 10, 60, 0.75),  # on the box past the border: ignored
            det(200, 150, 30, 70, 0.65),  # partial occlusion: TP
        ],
        'set09/V000/I00019': [
            det(300, 150, 41, 100, 0.95),  # heavy: ignored (reasonable), TP (all)
            det(104, 150, 41, 100, 0.7),  # TP
            det(250, 300, 30, 80, 0.6),  # on the file's ign box: ignored
        ],
        'set09/V000/I00039': [det(300, 200, 41, 100, 0.55)],  # empty frame: FP
    }
    got = on_real(real_frames, dets)
    # reasonable: 4 pedestrians, 4 frames; TP FP TP TP FP -> FPPI 0 .25 .25 .25 .5,
    # recall .25 .25 .5 .75 .75: miss .75 up to 0.178, .25 from 0.316
    assert got['kaist/MR_reasonable'] == pytest.approx(mr((0.75, 6), (0.25, 3)))
    assert got['kaist/MR_reasonable'] == pytest.approx(0.52002, abs=1e-5)
    # all: 6 pedestrians (+ heavy, + 40 px); TP TP FP TP TP FP -> FPPI 0 0 .25 .25
    # .25 .5, recall 1/6 2/6 2/6 3/6 4/6 4/6: miss 2/3 up to 0.178, 1/3 from 0.316
    assert got['kaist/MR_all'] == pytest.approx(mr((2 / 3, 6), (1 / 3, 3)))
    # day (2 frames, 3 pedestrians): TP FP TP -> FPPI 0 .5 .5, recall 1/3 1/3 2/3
    assert got['kaist/MR_reasonable_day'] == pytest.approx(mr((2 / 3, 7), (1 / 3, 2)))
    # night (2 frames, 1 pedestrian): TP FP -> the pedestrian is found at FPPI 0
    assert got['kaist/MR_reasonable_night'] == PERFECT


def test_real_format_through_the_test_pipeline(mmdet_scope):
    """PackDetInputs carries kaist_objects; without them gt_instances are used."""
    pipeline = [
        dict(type='LoadRGBTImagePair'),
        dict(type='Resize', scale=(320, 256), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'ori_shape', 'img_shape', 'scale_factor',
                       'kaist_objects'))
    ]
    ds = KAISTDataset(
        data_root=KAIST,
        ann_file='imageSets/test-mini.txt',
        test_mode=True,
        pipeline=pipeline)
    perfect = {
        'set06/V000/I00019': [[100, 100, 141, 200], [300, 100, 341, 200]],
        'set06/V000/I00039': [[200, 150, 230, 220]],
        'set09/V000/I00019': [[100, 150, 141, 250], [300, 150, 341, 250]],
    }
    samples, fallback = [], []
    for i in range(len(ds)):
        data_sample = ds[i]['data_samples']
        boxes = torch.tensor(
            perfect.get(data_sample.img_id, []), dtype=torch.float32).reshape(-1, 4)
        data_sample.pred_instances = pred_instances(boxes)
        samples.append(data_sample.to_dict())
        del data_sample.kaist_objects
        fallback.append(data_sample.to_dict())
    got = evaluate(samples)
    assert got['kaist/MR_reasonable'] == PERFECT  # heavy one: ignored region
    assert got['kaist/MR_all'] == pytest.approx(mr((1 / 6, 9)))  # 40 px one missed
    # gt_instances (original pixels: LoadAnnotations after Resize) and
    # ignored_instances: occlusion is unknown, so the heavy one counts as a
    # pedestrian (found); the 40 px one is too small for reasonable
    got = evaluate(fallback)
    assert got['kaist/MR_reasonable'] == PERFECT
    assert got['kaist/MR_all'] == pytest.approx(mr((1 / 6, 9)))


def pred_instances(boxes):
    from mmengine.structures import InstanceData
    return InstanceData(
        bboxes=boxes,
        scores=torch.linspace(0.9, 0.5, len(boxes)),
        labels=torch.zeros(len(boxes), dtype=torch.long))

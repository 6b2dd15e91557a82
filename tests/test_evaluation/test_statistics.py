"""The statistics over seeds: mean, sample std, standard error, the
two-standard-error marks and paired differences; numbers computed by hand."""
import math

import pytest

from mwam_mm.evaluation import (compare, fraction_of_ceiling, lower_is_better,
                                paired_difference, relative_score, seed_statistics)
from mwam_mm.evaluation.statistics import t95


def test_seed_statistics_and_two_standard_error_marks():
    s = seed_statistics([0.5, 0.7, 0.9, None])
    assert s['n'] == 3 and s['mean'] == pytest.approx(0.7)
    assert s['std'] == pytest.approx(0.2)  # sample std: sqrt(0.08 / 2)
    assert s['se'] == pytest.approx(0.2 / math.sqrt(3))
    one = seed_statistics([0.4])
    assert (one['mean'], one['std'], one['se']) == (0.4, None, None)
    assert seed_statistics([])['mean'] is None

    base = seed_statistics([0.5, 0.6, 0.7])  # mean .6, std .1
    # threshold 2 * sqrt(2 * 0.01 / 3) = 0.16330
    high = compare(seed_statistics([0.8, 0.9, 1.0]), base)
    assert high['diff'] == pytest.approx(0.3)
    assert high['threshold'] == pytest.approx(0.163299, abs=1e-6)
    assert high['marked'] is True
    near = compare(seed_statistics([0.65, 0.75, 0.85]), base)
    assert near['diff'] == pytest.approx(0.15) and near['marked'] is False
    assert compare(one, base) == dict(
        diff=pytest.approx(-0.2), threshold=None, marked=None)
    assert fraction_of_ceiling(dict(mean=0.3), dict(mean=0.6)) == 0.5
    assert fraction_of_ceiling(dict(mean=0.3), dict(mean=0.0)) is None


def test_a_miss_rate_is_better_lower_and_its_relative_scores_say_so():
    for key in ('kaist/MR_all', 'kaist/MR_reasonable_night', 'MR_all'):
        assert lower_is_better(key), key
    for key in ('coco/bbox_mAP', 'pascal_voc/mAP', 'mIoU', 'mAcc', None, ''):
        assert not lower_is_better(key), key
    assert relative_score(0.3, 0.6) == 0.5
    assert relative_score(0.3, 0.6, lower_better=True) == 2.0  # half the misses
    assert relative_score(0.0, 0.6, lower_better=True) is None
    assert relative_score(None, 0.6) is None and relative_score(0.3, None) is None
    assert fraction_of_ceiling(
        dict(mean=0.4), dict(mean=0.2), lower_better=True) == pytest.approx(0.5)
    assert fraction_of_ceiling(dict(mean=0.4), None, lower_better=True) is None


def test_paired_difference_and_its_t_interval():
    # diffs .2 .3 .4: mean .3, std .1, half width t95(2) * .1 / sqrt(3) = .248
    p = paired_difference([0.2, 0.3, 0.4])
    half = 4.303 * 0.1 / math.sqrt(3)
    assert p['n'] == 3 and p['diff'] == pytest.approx(0.3)
    assert p['low'] == pytest.approx(0.3 - half)
    assert p['high'] == pytest.approx(0.3 + half)
    assert p['excludes_zero'] is True  # [.052, .548]
    # std .3: [-.545, .945] holds 0
    assert paired_difference([-0.1, 0.2, 0.5])['excludes_zero'] is False
    one = paired_difference([0.3])
    assert (one['low'], one['high'], one['excludes_zero']) == (None, None, None)
    # the tabulated quantile at or below the degrees of freedom
    assert t95(11) == 2.228 and t95(100) == 2.042 and math.isnan(t95(0))

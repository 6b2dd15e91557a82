import math

import pytest

from mwam_mm.frm import MWAM_PRESETS, MWAMWeighting


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_formula_and_paper_preset():
    w = MWAMWeighting(['rgb', 'thermal'])
    k = w.update(dict(rgb=2.0, thermal=1.0))
    # first FRM initialises the bank (paper): bank = FRM, mean 1.5
    t_rgb, t_th = 2.0 / (1.5 + 1e-6), 1.0 / (1.5 + 1e-6)
    assert k['rgb'] == pytest.approx(1.5 - sigmoid(6 * (t_rgb - 0.7)))
    assert k['thermal'] == pytest.approx(1.5 - sigmoid(6 * (t_th - 0.7)))
    assert k['rgb'] < k['thermal']  # the preferred modality is slowed down


def test_bank_is_an_ema_updated_before_the_weights():
    w = MWAMWeighting(['a', 'b'], preset='release')
    w.update(dict(a=4.0, b=2.0))
    k = w.update(dict(a=1.0, b=3.0))
    assert w.bank == pytest.approx(dict(a=2.5, b=2.5))
    assert k['a'] == pytest.approx(1.5 - sigmoid(10 * (1 / 2.5 - 1)))
    assert w.steps == 2


def test_soft_begin_of_the_release():
    w = MWAMWeighting(['a', 'b'], bank_init='soft')
    w.update(dict(a=4.0, b=2.0))
    assert w.bank == pytest.approx(dict(a=2.0, b=1.0))


def test_presets_and_overrides():
    assert MWAM_PRESETS['paper'] == dict(alpha=1.5, beta=1.0, lam=6.0, gamma=0.7)
    assert MWAM_PRESETS['release'] == dict(alpha=1.5, beta=1.0, lam=10.0, gamma=1.0)
    w = MWAMWeighting(['a', 'b'], preset='release', gamma=0.5)
    assert (w.alpha, w.beta, w.lam, w.gamma) == (1.5, 1.0, 10.0, 0.5)
    with pytest.raises(ValueError, match='unknown MWAM preset'):
        MWAMWeighting(['a', 'b'], preset='fast')


def test_weights_stay_in_range_for_extreme_ratios():
    w = MWAMWeighting(['a', 'b'])
    for frm in (dict(a=1e12, b=1e-12), dict(a=0.0, b=1e30)):
        k = w.update(frm)
        assert all(0.5 <= v <= 1.5 for v in k.values())


def test_non_finite_frm_gets_weight_one_and_keeps_the_bank():
    w = MWAMWeighting(['a', 'b'])
    w.update(dict(a=2.0, b=1.0))
    k = w.update(dict(a=float('nan'), b=1.0))
    assert k['a'] == 1.0
    assert w.bank['a'] == 2.0
    assert math.isfinite(k['b'])
    assert MWAMWeighting(['a', 'b']).update(dict(a=float('inf'),
                                                 b=float('nan'))) == dict(
                                                     a=1.0, b=1.0)


def test_state_dict_round_trip_and_errors():
    w = MWAMWeighting(['a', 'b'])
    w.update(dict(a=2.0, b=1.0))
    restored = MWAMWeighting(['a', 'b'])
    restored.load_state_dict(w.state_dict())
    assert restored.update(dict(a=1.0, b=1.0)) == w.update(dict(a=1.0, b=1.0))
    with pytest.raises(KeyError, match='bank entries'):
        MWAMWeighting(['x', 'y']).load_state_dict(w.state_dict())
    with pytest.raises(KeyError, match='FRM missing'):
        w.update(dict(a=1.0))


def test_one_modality_in_the_bank_is_not_slowed():
    # the other modality blank or missing from the start: nothing to compare with
    weighting = MWAMWeighting(['rgb', 'thermal'])
    for value in (3.0, 2.0, 5.0):
        assert weighting.update(dict(rgb=value, thermal=float('nan'))) == dict(
            rgb=1.0, thermal=1.0)
    weights = weighting.update(dict(rgb=3.0, thermal=1.0))  # thermal arrives
    assert weights['rgb'] < 1.0 < weights['thermal']
    # a lone modality of a one-modality layout still gets its formula's weight
    lone = MWAMWeighting(['rgb'])
    expected = lone.weight(1.0)
    assert lone.update(dict(rgb=2.0))['rgb'] == pytest.approx(expected, rel=1e-5)

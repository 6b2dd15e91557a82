import copy
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from mwam_mm import ModalityLayout
from mwam_mm.evaluation import (blanking_pipeline, evaluate_robustness, summarize,
                                write_report)

LAYOUT = ModalityLayout.build(None)
SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'
# what Runner.test() would write; the evaluation must leave them alone
PRIVATE = ('_test_dataloader', '_test_loop', '_test_evaluator')


def test_mean_and_collapse_rate():
    summary = summarize({'rgb+thermal': 0.8, 'rgb': 0.2, 'thermal': 0.6}, LAYOUT)
    assert summary['mean'] == pytest.approx((0.8 + 0.2 + 0.6) / 3)
    # mean relative drop: ((0.8-0.2)/0.8 + (0.8-0.6)/0.8) / 2 * 100 = 50
    assert summary['collapse_rate'] == pytest.approx(50.0)
    assert summarize({
        'rgb+thermal': 0.0,
        'rgb': 0.0,
        'thermal': 0.0
    }, LAYOUT)['collapse_rate'] is None
    with pytest.raises(KeyError, match='missing for subsets'):
        summarize({'rgb+thermal': 0.8}, LAYOUT)
    # a miss rate: the mean relative rise, ((0.4-0.2)/0.2 + (0.3-0.2)/0.2) / 2
    rates = {'rgb+thermal': 0.2, 'rgb': 0.4, 'thermal': 0.3}
    assert summarize(rates, LAYOUT, lower_better=True)['collapse_rate'] == \
        pytest.approx(75.0)
    assert summarize(rates, LAYOUT)['collapse_rate'] == pytest.approx(-75.0)


def test_blanking_pipeline_inserts_after_loading():
    pipeline = [
        dict(type='LoadRGBTImagePair'),
        dict(type='Resize'),
        dict(type='PackDetInputs')
    ]
    out = blanking_pipeline(pipeline, LAYOUT, ('thermal', ), 'mean')
    assert out[1] == dict(
        type='BlankModality', blank=['rgb'], fill='mean', modalities=None)
    assert blanking_pipeline(pipeline, LAYOUT, ('rgb', 'thermal'), 'zero') == \
        pipeline
    assert len(pipeline) == 3  # not modified in place
    with pytest.raises(ValueError, match='no LoadRGBTImagePair'):
        blanking_pipeline([dict(type='LoadImageFromFile')], LAYOUT, ('rgb', ), 'zero')


def test_missing_scenario_marks_and_packs_the_missing_modalities():
    import mwam_mm  # noqa: F401  (registers the transforms)
    pipeline = [
        dict(type='LoadRGBTImagePair'),
        dict(type='Resize'),
        dict(type='PackDetInputs')
    ]
    out = blanking_pipeline(pipeline, LAYOUT, ('rgb', ), 'zero', 'missing')
    assert out[1] == dict(
        type='BlankModality',
        blank=['thermal'],
        fill='zero',
        modalities=None,
        mark_missing=True)
    # PackDetInputs' own default keys, plus the mark
    assert out[-1]['meta_keys'][:2] == ('img_id', 'img_path')
    assert out[-1]['meta_keys'][-1] == 'missing_modalities'
    given = pipeline[:2] + [dict(type='PackSegInputs', meta_keys=('img_path', ))]
    out = blanking_pipeline(given, LAYOUT, ('rgb', ), 'zero', 'missing')
    assert out[-1]['meta_keys'] == ('img_path', 'missing_modalities')
    assert 'meta_keys' not in pipeline[-1]  # not modified in place
    with pytest.raises(ValueError, match="unknown robustness scenario.*'absent'"):
        blanking_pipeline(pipeline, LAYOUT, ('rgb', ), 'zero', 'absent')


def test_report_files_show_both_scenarios(tmp_path):
    results = {
        'blank': {
            'baseline': summarize({
                'rgb+thermal': 0.9,
                'rgb': 0.1,
                'thermal': 0.8
            }, LAYOUT),
            'mwam': summarize({
                'rgb+thermal': 0.85,
                'rgb': 0.5,
                'thermal': 0.8
            }, LAYOUT),
        },
        'missing': {
            'baseline': summarize({
                'rgb+thermal': 0.9,
                'rgb': 0.3,
                'thermal': 0.9
            }, LAYOUT),
            'mwam': summarize({
                'rgb+thermal': 0.85,
                'rgb': 0.6,
                'thermal': 0.8
            }, LAYOUT),
        },
    }
    report = write_report(results, 'mAP50', str(tmp_path), extra=dict(seed=0))
    table = open(report['markdown']).read()
    assert '| baseline | blank | 0.900 | 0.100 | 0.800 | 0.600 | 50.0 |' in table
    assert '| baseline | missing | 0.900 | 0.300 | 0.900 | 0.700 | 33.3 |' in table
    rows = [
        line.split(' | ')[:2] for line in table.splitlines()
        if line.startswith('| baseline') or line.startswith('| mwam')
    ]
    assert rows == [['| baseline', 'blank'], ['| baseline', 'missing'],
                    ['| mwam', 'blank'], ['| mwam', 'missing']]
    data = json.load(open(report['json']))
    assert data['seed'] == 0
    assert data['scenarios']['blank']['mwam']['scores']['rgb'] == 0.5
    assert data['scenarios']['missing']['mwam']['scores']['rgb'] == 0.6
    assert osp.getsize(report['chart']) > 1000
    with pytest.raises(ValueError, match='unknown robustness scenario'):
        write_report({'dark': results['blank']}, 'mAP50', str(tmp_path))


class _Recorder(Hook):
    """The hook calls of an evaluation, and the batches of each test run."""

    def __init__(self):
        self.calls, self.batches = [], []

    def before_run(self, runner):
        self.calls.append('before_run')

    def before_test(self, runner):
        self.calls.append('before_test')
        self.batches.append([])

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self.batches[-1].append(data_batch)

    def after_test_epoch(self, runner, metrics=None):
        self.calls.append('after_test_epoch')

    def after_test(self, runner):
        self.calls.append('after_test')

    def after_run(self, runner):
        self.calls.append('after_run')


def _seen(batches, layout):
    """Per test run: the modalities with any non-zero input and the missing
    marks, over all its batches."""
    present, marks = set(), set()
    for batch in batches:
        for image, sample in zip(batch['inputs'], batch['data_samples']):
            present |= {m for m in layout.names if image[layout.channel_slice(m)].any()}
            marks |= set(sample.metainfo.get('missing_modalities') or ())
    return present, marks


def test_each_run_is_its_own_test_loop_and_the_runner_is_left_as_built(
        synthetic_root, tmp_path, monkeypatch):
    from mwam_mm.engine import build_runner
    from tests.helpers.configs import tiny_config
    cfg = tiny_config(SYNTHETIC, synthetic_root, str(tmp_path), iters=1)
    cfg.log_level = 'WARNING'
    runner = build_runner(cfg)
    recorder = _Recorder()
    runner.register_hook(recorder, 'LOWEST')
    layout = runner.model.backbone.layout
    # mmengine builds the runner's own test loop on the first read of the
    # property (its timer and logger hooks read it); from then on nothing may
    # replace it, nor the loader and evaluator configs the runner was given
    assert runner.test_loop is not None
    private = {k: runner.__dict__[k] for k in PRIVATE}
    given = copy.deepcopy(runner.cfg.to_dict())
    texts = []
    text = Config.pretty_text.fget
    monkeypatch.setattr(Config, 'pretty_text',
                        property(lambda self: texts.append(1) or text(self)))

    result = evaluate_robustness(
        runner, layout, degradations=[('noise', 'rgb', 1)], splits='auto')

    replaced = [k for k, v in private.items() if runner.__dict__[k] is not v]
    assert replaced == []
    # no run's edits reached the config, and its text was formatted once
    # (RuntimeInfoHook.before_run) for all six runs
    assert runner.cfg.to_dict() == given
    assert len(texts) == 1
    assert list(result['scenarios']['missing']) == ['rgb+thermal', 'rgb', 'thermal']
    assert set(result['splits']) == {'day', 'night'}
    assert result['degradations']['clean'] == \
        result['scenarios']['blank']['rgb+thermal']
    # the runner.test() hooks once around all runs, the test hooks per run
    assert recorder.calls == ['before_run'] + \
        ['before_test', 'after_test_epoch', 'after_test'] * 6 + ['after_run']
    # the full set (shared by the scenarios), blank rgb and thermal, missing rgb
    # and thermal, the degraded clean set: each run fed its own pipeline, none
    # an earlier run's blanking
    both = {'rgb', 'thermal'}
    assert [_seen(b, layout) for b in recorder.batches] == [
        (both, set()),
        ({'rgb'}, set()),
        ({'thermal'}, set()),
        ({'rgb'}, {'thermal'}),
        ({'thermal'}, {'rgb'}),
        (both, set()),
    ]


@pytest.mark.parametrize('configured', [True, False])
def test_blank_detected_marks_the_black_camera_and_blank_does_not(
        synthetic_root, tmp_path, configured):
    from mwam_mm.engine import build_runner
    from tests.helpers.configs import tiny_config
    cfg = tiny_config(SYNTHETIC, synthetic_root, str(tmp_path), iters=1)
    cfg.log_level = 'WARNING'
    if not configured:  # the scenario brings the check with it
        cfg.model.data_preprocessor.dead_camera = None
    runner = build_runner(cfg)
    recorder = _Recorder()
    runner.register_hook(recorder, 'LOWEST')
    layout = runner.model.backbone.layout
    own = runner.model.data_preprocessor.dead_camera
    assert (own is not None) == configured

    result = evaluate_robustness(
        runner, layout, scenarios=['blank', 'blank-detected', 'missing'], splits=None)

    both = {'rgb', 'thermal'}
    assert [_seen(b, layout) for b in recorder.batches] == [
        (both, set()),
        ({'rgb'}, set()),  # blank: the check is off
        ({'thermal'}, set()),
        ({'rgb'}, {'thermal'}),  # blank-detected: the black camera marked
        ({'thermal'}, {'rgb'}),
        ({'rgb'}, {'thermal'}),  # missing
        ({'thermal'}, {'rgb'}),
    ]
    assert result['scenarios']['blank-detected'] == result['scenarios']['missing']
    assert runner.model.data_preprocessor.dead_camera is own  # restored


def test_an_unknown_scenario_lists_the_known_ones():
    from mwam_mm.evaluation.robustness import check_scenarios
    with pytest.raises(ValueError, match=r"\['dead'\].*'blank-detected'"):
        check_scenarios(['dead'])

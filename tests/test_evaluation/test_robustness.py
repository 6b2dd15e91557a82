import json
import os.path as osp

import pytest

from mwam_mm import ModalityLayout
from mwam_mm.evaluation import blanking_pipeline, summarize, write_report

LAYOUT = ModalityLayout.build(None)


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

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
    assert summarize({'rgb+thermal': 0.0, 'rgb': 0.0, 'thermal': 0.0},
                     LAYOUT)['collapse_rate'] is None
    with pytest.raises(KeyError, match='missing for subsets'):
        summarize({'rgb+thermal': 0.8}, LAYOUT)


def test_blanking_pipeline_inserts_after_loading():
    pipeline = [dict(type='LoadRGBTImagePair'), dict(type='Resize'),
                dict(type='PackDetInputs')]
    out = blanking_pipeline(pipeline, LAYOUT, ('thermal', ), 'mean')
    assert out[1] == dict(type='BlankModality', blank=['rgb'], fill='mean',
                          modalities=None)
    assert blanking_pipeline(pipeline, LAYOUT, ('rgb', 'thermal'), 'zero') == \
        pipeline
    assert len(pipeline) == 3  # not modified in place
    with pytest.raises(ValueError, match='no LoadRGBTImagePair'):
        blanking_pipeline([dict(type='LoadImageFromFile')], LAYOUT, ('rgb', ),
                          'zero')


def test_report_files(tmp_path):
    summaries = {
        'baseline': summarize({'rgb+thermal': 0.9, 'rgb': 0.1, 'thermal': 0.8},
                              LAYOUT),
        'mwam': summarize({'rgb+thermal': 0.85, 'rgb': 0.5, 'thermal': 0.8},
                          LAYOUT),
    }
    report = write_report(summaries, 'mAP50', str(tmp_path), extra=dict(seed=0))
    table = open(report['markdown']).read()
    assert '| baseline | 0.900 | 0.100 | 0.800 | 0.600 | 50.0 |' in table
    data = json.load(open(report['json']))
    assert data['seed'] == 0 and data['variants']['mwam']['scores']['rgb'] == 0.5
    assert osp.getsize(report['chart']) > 1000

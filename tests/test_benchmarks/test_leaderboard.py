"""The leaderboard harness (benchmarks/leaderboard): the variant table and its
overlays, schedules, run configs and stored setups, aggregation, writers and
progress; numbers computed by hand."""
import copy
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config

import mwam_mm  # noqa: F401
from benchmarks import leaderboard as lb
from mwam_mm.evaluation import seed_statistics
from tests.conftest import ROOT

SEG = osp.join(ROOT, 'configs', 'segmentation',
               'deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py')


# ------------------------------------------------------------------ variants
def leaf(variant):
    """The synthetic family's leaf config file of ``variant``."""
    return osp.join(
        osp.dirname(lb.SYNTHETIC_CONFIG), lb.variant_name(lb.SYNTHETIC_CONFIG, variant))


def test_variant_table():
    assert list(lb.VARIANTS)[:12] == [
        'baseline', 'moddrop', 'mwam', 'moddrop-mwam', 'ogm-ge', 'rsc-md', 'btw',
        'cmpt', 'cmpt-frozen', 'rsc-view', 'unimodal-rgb', 'unimodal-thermal'
    ]
    # cmpt-frozen's streams start from the same seed's references
    assert lb.stream_sources('cmpt-frozen') == ('unimodal-rgb', 'unimodal-thermal')
    assert lb.stream_sources('cmpt') == () and lb.stream_sources('nope') == ()
    assert lb.VARIANTS['baseline'].overlays == ()
    assert lb.VARIANTS['moddrop-mwam'].overlays == ('moddrop', 'mwam')
    assert lb.CEILINGS == {'unimodal-rgb': 'rgb', 'unimodal-thermal': 'thermal'}
    assert lb.ceiling_modality('unimodal-thermal') == 'thermal'
    assert lb.ceiling_modality('mwam') is None
    assert lb.ANALYSIS_VARIANTS == ('mwam-update', 'moddrop-input', 'mwam-robust',
                                    'moddrop-constk', 'moddrop-mwam-swap')
    assert lb.expected_cost('rsc-view') > lb.expected_cost('rsc-md') > \
        lb.expected_cost('baseline') > lb.expected_cost('unimodal-rgb')
    assert lb.variant_name('configs/x/fam.py', 'baseline') == 'fam.py'
    assert lb.variant_name('configs/x/fam.py', 'btw') == 'fam_btw.py'
    with pytest.raises(KeyError, match="unknown variant.*'nope'"):
        lb.load_variant(lb.SYNTHETIC_CONFIG, 'nope')
    with pytest.raises(FileNotFoundError, match="no method overlay 'nope'.*'moddrop'"):
        lb.overlay_path('nope')
    with pytest.raises(FileNotFoundError, match='config file none.py not found'):
        lb.load_variant('none.py', 'baseline')


@pytest.mark.parametrize('variant', list(lb.VARIANTS))
def test_variant_overlays_exist_and_give_the_leaf_config(variant):
    """Every variant's overlays exist and set only what a method may (hooks and
    its change to the model), and the synthetic base with them applied is the
    family's leaf config of that variant, named as it."""
    entry = lb.VARIANTS[variant]
    for name in entry.overlays + (entry.iter_overlays or ()):
        overlay = Config.fromfile(lb.overlay_path(name))
        assert set(overlay) and set(overlay) <= {'custom_hooks', lb.METHOD_MODEL_KEY}
    cfg = lb.load_variant(lb.SYNTHETIC_CONFIG, variant)
    assert osp.isfile(leaf(variant))
    expected = Config.fromfile(leaf(variant)).to_dict()
    if entry.streams_from:
        # the leaf names the references' checkpoints; the benchmark gives each
        # run its seed's (set_stream_checkpoints), with the same prefixes
        streams = expected['model']['backbone'].pop('streams')
        assert {
            m: s['init_cfg']['prefix']
            for m, s in streams.items()
        } == {
            m: f'backbone.streams.{m}.'
            for m in ('rgb', 'thermal')
        }
        given = lb.set_stream_checkpoints(
            copy.deepcopy(cfg), {
                m: s['init_cfg']['checkpoint']
                for m, s in streams.items()
            })
        assert given.model.backbone.streams == streams
    assert cfg.to_dict() == expected
    assert cfg.filename == leaf(variant)
    assert lb.METHOD_MODEL_KEY not in cfg


def test_variants_of_other_families():
    # relative to the repository root, from any working directory
    rel = osp.relpath(lb.SYNTHETIC_CONFIG, ROOT)
    assert lb.load_variant(rel,
                           'cmpt').to_dict() == Config.fromfile(leaf('cmpt')).to_dict()
    # a family trained by iterations gets the overlays counted in iterations,
    # which are its leaf configs'
    for variant in ('ogm-ge', 'rsc-md', 'btw', 'mwam', 'moddrop-mwam', 'cmpt'):
        cfg = lb.load_variant(SEG, variant)
        assert cfg.to_dict() == Config.fromfile(SEG[:-3] + f'_{variant}.py').to_dict()
    assert lb.load_variant(SEG, 'ogm-ge').custom_hooks[0]['window'] == (0, 40000)
    # the overlays merge as mmengine's inheritance does: model key by key
    base = Config.fromfile(SEG)
    ceiling = lb.load_variant(SEG, 'unimodal-thermal')
    assert ceiling.model.backbone.pop('ignore_modalities') == ['rgb']
    assert ceiling.model == base.model


def test_schedule_changes():
    cfg = Config.fromfile(lb.SYNTHETIC_CONFIG)
    lb.apply_schedule(cfg, epochs=3)
    assert cfg.train_cfg.max_epochs == 3 and cfg.train_cfg.val_interval == 4
    linear, cosine = cfg.param_scheduler
    assert linear.end == 100 and not linear.by_epoch  # by iteration: kept
    assert (cosine.T_max, cosine.end) == (3, 3)
    assert cfg.default_hooks.checkpoint.interval == 3
    # longer than the config's 12 epochs (a reference's --reference-epochs): the
    # cosine is stretched over 48, not left at its floor after epoch 12
    cfg = Config.fromfile(lb.SYNTHETIC_CONFIG)
    lb.apply_schedule(cfg, epochs=48)
    linear, cosine = cfg.param_scheduler
    assert (cosine.T_max, cosine.end) == (48, 48) and linear.end == 100
    step = Config(
        dict(
            train_cfg=dict(max_epochs=12),
            param_scheduler=[
                dict(type='LinearLR', by_epoch=True, begin=0, end=2),
                dict(type='MultiStepLR', by_epoch=True, end=12, milestones=[8, 11])
            ]))
    lb.apply_schedule(step, epochs=24)
    warmup, steps = step.param_scheduler
    assert warmup.end == 2  # ends before the old end: kept
    assert (steps.end, steps.milestones) == (24, [16, 22])

    cfg = Config.fromfile(lb.SYNTHETIC_CONFIG)
    lb.apply_schedule(cfg, max_iters=5)  # the smoke mode
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=5, val_interval=6)
    assert cfg.param_scheduler == []
    assert cfg.default_hooks.checkpoint == dict(
        type='CheckpointHook', interval=5, by_epoch=False)
    assert cfg.train_dataloader.num_workers == 0
    assert cfg.log_processor.by_epoch is False
    # the method hooks act within the smoke run (BTW would refuse by_epoch)
    hooks = {}
    for variant in ('btw', 'ogm-ge', 'rsc-md'):
        method = lb.load_variant(lb.SYNTHETIC_CONFIG, variant)
        lb.apply_schedule(method, max_iters=5)
        hooks.update({h['type']: h for h in method.custom_hooks})
    assert hooks['BTWHook']['by_epoch'] is False and hooks['BTWHook']['interval'] == 1
    assert hooks['OGMGEHook']['by_epoch'] is False
    assert tuple(hooks['OGMGEHook']['window']) == (0, 5)
    assert 'warmup_epochs' not in hooks['RSCMDHook']
    assert hooks['RSCMDHook']['warmup_iters'] == 1
    assert lb.hook_within_iters(dict(type='mwam_mm.BTWHook', interval=3),
                                5)['interval'] == 1
    assert lb.hook_within_iters(dict(type='MWAMHook', alpha=1), 5) == dict(
        type='MWAMHook', alpha=1)

    seg = Config.fromfile(SEG)  # iteration-based
    with pytest.raises(ValueError, match='trains by iterations.*max_iters'):
        lb.apply_schedule(seg, epochs=2)
    lb.apply_schedule(seg, max_iters=100)
    assert seg.train_cfg.max_iters == 100 and seg.train_cfg.val_interval == 101
    assert all(s.end <= 100 for s in seg.param_scheduler if not s.by_epoch)
    longer = Config.fromfile(SEG)
    iters = longer.train_cfg.max_iters
    lb.apply_schedule(longer, max_iters=2 * iters)
    assert max(s.end for s in longer.param_scheduler if not s.by_epoch) == 2 * iters
    with pytest.raises(ValueError, match='not both'):
        lb.apply_schedule(seg, epochs=1, max_iters=1)
    with pytest.raises(ValueError, match='positive integer'):
        lb.apply_schedule(seg, max_iters=0)

    cfg = Config.fromfile(lb.SYNTHETIC_CONFIG)
    lb.set_test_scale(cfg, (96, 80))
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(
        type='Resize', scale=(96, 80), keep_ratio=True)


def test_run_config_and_options(tmp_path):
    with pytest.raises(KeyError, match=r"unknown run option.*'epoch'"):
        lb.RunOptions.build(dict(epoch=3))
    opts = lb.RunOptions(
        max_iters=2, batch_size=3, cfg_options={'model.neck.num_outs': 5})
    cfg = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(tmp_path), 7, opts)
    assert cfg.randomness.seed == 7 and cfg.train_dataloader.batch_size == 3
    assert cfg.custom_hooks == [dict(type='BranchGradNormHook')]
    uni = lb.build_run_config(
        lb.SYNTHETIC_CONFIG, str(tmp_path), 7, opts, variant='unimodal-rgb')
    assert uni.model.backbone.ignore_modalities == ['thermal']
    assert not uni.get('custom_hooks')  # one branch: nothing to compare
    # named as the variant's leaf config: mmengine dumps it under that name
    assert osp.basename(uni.filename) == lb.variant_name(lb.SYNTHETIC_CONFIG,
                                                         'unimodal-rgb')
    # a smoke run trains the epoch-based method settings, made to act within it
    ogm = lb.build_run_config(
        lb.SYNTHETIC_CONFIG, str(tmp_path), 7, opts, variant='ogm-ge')
    assert ogm.custom_hooks == [dict(type='OGMGEHook', window=(0, 2), by_epoch=False)]
    setup = lb.training_setup(cfg, lb.SYNTHETIC_CONFIG, 7)
    assert setup['config'] == osp.relpath(lb.SYNTHETIC_CONFIG, ROOT)
    assert 'variant' not in setup
    assert lb.training_setup(uni, lb.SYNTHETIC_CONFIG, 7,
                             'unimodal-rgb')['variant'] == 'unimodal-rgb'
    again = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(tmp_path / 'b'), 7, opts)
    assert lb.training_setup(again, lb.SYNTHETIC_CONFIG, 7) == setup  # not the dir
    other = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(tmp_path), 7,
                                lb.RunOptions(max_iters=3))
    assert lb.training_setup(other, lb.SYNTHETIC_CONFIG,
                             7)['config_hash'] != setup['config_hash']

    run_dir = str(tmp_path / 'r')
    evaluation = opts.evaluation()
    assert lb.stored_status(run_dir, setup, evaluation) == 'train'
    # an interrupted training: resumed only with the same setup
    os.makedirs(run_dir)
    open(osp.join(run_dir, 'last_checkpoint'), 'w').write('iter_1.pth')
    with pytest.raises(ValueError, match='not started by run_variant'):
        lb.stored_status(run_dir, setup, evaluation)
    lb.save_result(osp.join(run_dir, lb.SETUP_FILE), setup)
    assert lb.stored_status(run_dir, setup, evaluation) == 'train'
    with pytest.raises(ValueError, match=r'training of another setup \(seed: 7 -> 8\)'):
        lb.stored_status(run_dir, dict(setup, seed=8), evaluation)
    # a finished run
    lb.save_result(
        osp.join(run_dir, lb.RESULT_FILE), dict(setup=setup, evaluation=evaluation))
    assert lb.stored_status(run_dir, setup, evaluation) == 'done'
    assert lb.stored_status(run_dir, setup,
                            lb.RunOptions(scenarios=['missing']).evaluation()) == \
        'evaluate'
    with pytest.raises(ValueError, match=r'another setup \(seed: 7 -> 8\).*--force'):
        lb.stored_status(run_dir, dict(setup, seed=8), evaluation)
    # the config's path is a label: the same config, seed and data is the same
    # training (a run stored under the leaf's path, before the variant table)
    renamed = dict(setup, config='configs/detection/old_name.py', variant='baseline')
    assert lb.stored_status(run_dir, renamed, evaluation) == 'done'


def test_reference_schedule_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r'reference_epochs=30 .*max_iters=2 .*one'):
        lb.RunOptions(reference_epochs=30, max_iters=2)
    with pytest.raises(
            ValueError, match=r'reference_epochs=3: .*mfnet\.py trains by '
            'iterations'):
        lb.build_run_config(SEG, str(tmp_path), 0, dict(reference_epochs=3),
                            'unimodal-rgb')
    # the family's other variants are not references: as before
    lb.build_run_config(SEG, str(tmp_path), 0, dict(reference_epochs=3), 'baseline')
    with pytest.raises(
            ValueError,
            match=r'curve_interval=13 is longer than the '
            r'training of unimodal-rgb \(12 epochs\)'):
        lb.build_run_config(lb.SYNTHETIC_CONFIG, str(tmp_path), 0,
                            dict(curve_interval=13), 'unimodal-rgb')
    opts = dict(reference_epochs=30, curve_interval=10)
    ref = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(tmp_path), 0, opts,
                              'unimodal-rgb')
    assert (ref.train_cfg.max_epochs, ref.train_cfg.val_interval) == (30, 10)
    assert ref.default_hooks.checkpoint.interval == 30
    assert lb.final_checkpoint(ref) == 'epoch_30.pth'
    base = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(tmp_path), 0, opts)
    assert (base.train_cfg.max_epochs, base.train_cfg.val_interval) == (12, 13)


def _reference_checkpoint(path, modality, value):
    """A reference's checkpoint: its stream's weight (``value``), and a head
    and meta that differ each time it is saved, as two trainings' files do."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(
        dict(
            meta=dict(seed=int(torch.randint(1000, ()))),
            state_dict={
                f'backbone.streams.{modality}.conv.weight': torch.full((2, 2), value),
                'bbox_head.conv.weight': torch.rand(2)
            }), path)


def test_stream_checkpoints_enter_the_setup_by_their_weights(tmp_path):
    opts = lb.RunOptions(max_iters=1)
    evaluation = opts.evaluation()

    def setup_in(work):
        refs = {
            m: str(work / f'unimodal-{m}' / 'iter_1.pth')
            for m in ('rgb', 'thermal')
        }
        cfg = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(work / 'cmpt-frozen'), 0,
                                  opts, 'cmpt-frozen', refs)
        return lb.training_setup(cfg, lb.SYNTHETIC_CONFIG, 0, 'cmpt-frozen')

    work = tmp_path / 'work'
    # the references are not trained yet: no weights to compare
    assert setup_in(work)['streams'] == {'rgb': None, 'thermal': None}
    for m, value in (('rgb', 1.0), ('thermal', 2.0)):
        _reference_checkpoint(str(work / f'unimodal-{m}' / 'iter_1.pth'), m, value)
    setup = setup_in(work)
    assert set(setup['streams']) == {'rgb', 'thermal'}
    assert None not in setup['streams'].values()
    assert setup['stream_checkpoints']['rgb'] == str(work / 'unimodal-rgb' /
                                                     'iter_1.pth')
    # runs of the other variants have no such entries (their stored setups hold)
    base = lb.build_run_config(lb.SYNTHETIC_CONFIG, str(work / 'b'), 0, opts)
    assert 'streams' not in lb.training_setup(base, lb.SYNTHETIC_CONFIG, 0)
    lb.save_result(
        str(work / 'cmpt-frozen' / lb.RESULT_FILE),
        dict(setup=setup, evaluation=evaluation))
    # the work dir moved (or copied elsewhere): the same trainings, reused
    moved = tmp_path / 'moved'
    shutil.move(str(work), str(moved))
    again = setup_in(moved)
    assert again['config_hash'] == setup['config_hash']
    assert lb.stored_status(str(moved / 'cmpt-frozen'), again, evaluation) == 'done'
    # a reference trained again to the same stream weights: still the same
    _reference_checkpoint(str(moved / 'unimodal-rgb' / 'iter_1.pth'), 'rgb', 1.0)
    assert lb.stored_status(str(moved / 'cmpt-frozen'), setup_in(moved),
                            evaluation) == 'done'
    # ... to other weights: the run that started from the old ones is refused
    _reference_checkpoint(
        str(moved / 'unimodal-thermal' / 'iter_1.pth'), 'thermal', 3.0)
    with pytest.raises(ValueError, match=r'another setup \(.*streams: .*--force'):
        lb.stored_status(str(moved / 'cmpt-frozen'), setup_in(moved), evaluation)
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'')
    with pytest.raises(ValueError, match=r'broken\.pth, which cannot be read'):
        lb.stream_weights_digest(str(broken), 'backbone.streams.rgb.')


def test_synthetic_data_helpers(tmp_path):
    assert lb.default_synthetic_root() == osp.join('data', 'synthetic_rgbt')
    assert lb.default_synthetic_root('segmentation') == osp.join(
        'data', 'synthetic_rgbt_seg')
    with pytest.raises(ValueError, match="task must be one of.*'depth'"):
        lb.default_synthetic_root('depth')
    with pytest.raises(ValueError, match="task must be one of.*'depth'"):
        lb.ensure_synthetic_data(str(tmp_path / 'depth'), task='depth')
    # the task of a config: by its training dataset's class, through wrappers
    assert lb.synthetic_task(lb.SYNTHETIC_CONFIG) == 'detection'
    assert lb.synthetic_task(lb.SYNTHETIC_SEG_CONFIG) == 'segmentation'
    wrapped = tmp_path / 'wrapped_synthetic.py'
    wrapped.write_text(
        f'_base_ = {lb.SYNTHETIC_SEG_CONFIG!r}\n'
        'train_dataloader = dict(dataset=dict(_delete_=True, type="RepeatDataset", '
        'times=2, dataset=dict(type="MFNetDataset")))\n')
    assert lb.synthetic_task(str(wrapped)) == 'segmentation'
    bare = tmp_path / 'bare_synthetic.py'
    bare.write_text('model = dict(type="RetinaNet")\n')
    with pytest.raises(ValueError, match=r'bare_synthetic\.py: no train_dataloader'):
        lb.synthetic_task(str(bare))
    with pytest.raises(ValueError, match=r"training dataset 'KAISTDataset' reads no"):
        lb.synthetic_task(
            osp.join(ROOT, 'configs', 'detection',
                     'retinanet_dual-r18_fpn_1xb8-12e_kaist.py'))
    assert lb.default_synthetic_root(
        night_fraction=0.9,
        width=96) == osp.join('data', 'synthetic_rgbt_seed0_night0.9_96x128_400-100')
    assert lb.synthetic_meta(
        num_train=8, night_fraction=1) == (
            'seed=0 num_train=8 num_test=100 width=160 height=128 night_fraction=1.0 '
            'classes=person,vehicle')
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not a synthetic dataset'):
        lb.ensure_synthetic_data(str(foreign), num_train=2, num_test=2)
    assert lb.data_root_options('/d') == {
        'train_dataloader.dataset.data_root': '/d',
        'val_dataloader.dataset.data_root': '/d',
        'test_dataloader.dataset.data_root': '/d'
    }


# ----------------------------------------------------------------- the board
def run(variant, seed, scores, ceiling=None, splits=None, degradations=None):
    """A run result as run_variant returns it (the parts aggregate reads)."""
    return dict(
        variant=variant,
        seed=seed,
        metric='pascal_voc/mAP',
        modalities=['rgb', 'thermal'],
        subsets=['rgb+thermal', 'rgb', 'thermal'],
        ceiling=ceiling,
        scenarios=scores,
        splits=splits or {},
        degradations=degradations,
        train_seconds=1.0)


def test_a_miss_rate_board_reads_its_fractions_and_collapse_the_other_way():

    def rate(variant, seed, scores, ceiling=None):
        return dict(
            run(variant, seed, dict(missing=scores), ceiling), metric='kaist/MR_all')

    fused = {'rgb+thermal': 0.2, 'rgb': 0.4, 'thermal': 0.3}
    runs = {
        'baseline': [rate('baseline', s, fused) for s in (0, 1)],
        'unimodal-rgb': [rate('unimodal-rgb', s, {'rgb': 0.5}, 'rgb') for s in (0, 1)],
        'unimodal-thermal':
        [rate('unimodal-thermal', s, {'thermal': 0.24}, 'thermal') for s in (0, 1)]
    }
    board = lb.aggregate(runs)
    stats = board['variants']['baseline']['scenarios']['missing']
    # the mean relative rise of the rates: (0.4/0.2 - 1 + 0.3/0.2 - 1) / 2 = 75 %
    assert stats['collapse_rate']['mean'] == pytest.approx(75.0)
    # RGB-only misses fewer than its ceiling (0.4 < 0.5): better, above 1
    assert stats['fraction_of_ceiling']['rgb'] == pytest.approx(0.5 / 0.4)
    assert stats['fraction_of_ceiling']['thermal'] == pytest.approx(0.24 / 0.3)
    text = lb.leaderboard_markdown(board)
    assert '`kaist/MR_all` is a miss rate: lower is better' in text
    assert '| above | 80 |' in text
    assert 'is a miss rate' not in lb.leaderboard_markdown(
        lb.aggregate({'baseline': [run('baseline', 0, dict(missing=fused))]}))


def both(full, rgb, thermal, missing_rgb=None):
    return dict(
        blank={
            'rgb+thermal': full,
            'rgb': rgb,
            'thermal': thermal
        },
        missing={
            'rgb+thermal': full,
            'rgb': rgb if missing_rgb is None else missing_rgb,
            'thermal': thermal
        })


def degr(clean, rgb_noise, thermal_noise):
    from mwam_mm.evaluation import summarize_degradations
    scores = dict(noise=dict(rgb={'1': rgb_noise}, thermal={'1': thermal_noise}))
    return dict(
        clean=clean,
        scores=scores,
        summary=summarize_degradations(clean, scores),
        splits={})


@pytest.fixture
def runs():
    return {
        'baseline': [
            run('baseline', 0, both(0.8, 0.1, 0.7), degradations=degr(0.8, 0.4, 0.8)),
            run('baseline', 1, both(0.8, 0.2, 0.8), degradations=degr(0.8, 0.4, 0.8)),
            run('baseline', 2, both(0.8, 0.3, 0.6), degradations=degr(0.8, 0.4, 0.8)),
        ],
        'moddrop': [
            run('moddrop', s, both(0.7, r, 0.6, m), degradations=degr(0.7, 0.7, 0.7))
            for s, r, m in ((0, 0.5, 0.4), (1, 0.6, 0.5), (2, 0.7, 0.6))
        ],
        'unimodal-rgb': [
            run('unimodal-rgb', s, dict(blank={'rgb': v}, missing={'rgb': v}), 'rgb')
            for s, v in ((0, 0.4), (1, 0.5), (2, 0.6))
        ],
    }


def test_aggregate_on_known_runs(runs):
    board = lb.aggregate(runs)
    assert board['seeds'] == [0, 1, 2] and board['baseline'] == 'baseline'
    assert board['scenarios'] == ['blank', 'missing']
    base = board['variants']['baseline']['scenarios']['blank']
    assert base['scores']['rgb']['mean'] == pytest.approx(0.2)
    assert base['scores']['rgb']['std'] == pytest.approx(0.1)
    assert base['scores']['thermal']['values'] == [0.7, 0.8, 0.6]
    # mean over subsets per seed: 1.6/3, 1.8/3, 1.7/3
    assert base['mean']['values'] == pytest.approx([1.6 / 3, 1.8 / 3, 1.7 / 3])
    assert base['mean']['mean'] == pytest.approx(1.7 / 3)
    # PCR per seed: ((.8-.1)/.8 + (.8-.7)/.8)/2*100 = 50; 37.5; 43.75
    assert base['collapse_rate']['values'] == pytest.approx([50.0, 37.5, 43.75])
    # the ceiling: its own subset only, the same in both scenarios
    assert board['ceilings']['rgb']['blank']['mean'] == pytest.approx(0.5)
    assert board['ceilings']['rgb']['missing']['variant'] == 'unimodal-rgb'
    ceiling = board['variants']['unimodal-rgb']
    assert ceiling['ceiling'] == 'rgb'
    assert list(ceiling['scenarios']['blank']['scores']) == ['rgb']
    assert 'mean' not in ceiling['scenarios']['blank']
    assert base['fraction_of_ceiling'] == {'rgb': pytest.approx(0.4), 'thermal': None}
    mod = board['variants']['moddrop']['scenarios']
    assert mod['missing']['fraction_of_ceiling']['rgb'] == pytest.approx(1.0)
    # moddrop rgb (blank) .5 .6 .7 vs baseline .1 .2 .3: diff .4 > 0.1633
    marks = mod['blank']['vs_baseline']
    assert marks['rgb']['diff'] == pytest.approx(0.4) and marks['rgb']['marked']
    # thermal .6 .6 .6 vs .7 .8 .6: diff -.1, threshold 2 * .1 / sqrt(3) = .11547
    assert marks['thermal']['diff'] == pytest.approx(-0.1)
    assert marks['thermal']['threshold'] == pytest.approx(0.115470, abs=1e-6)
    assert marks['thermal']['marked'] is False
    # both cameras .7 vs .8, no spread on either side: any difference is marked
    assert marks['rgb+thermal']['threshold'] == 0.0
    assert marks['rgb+thermal']['marked'] is True
    assert set(marks) == {'rgb+thermal', 'rgb', 'thermal', 'mean', 'collapse_rate'}
    assert 'vs_baseline' not in base
    assert board['variants']['unimodal-rgb']['scenarios']['blank']['vs_baseline'][
        'rgb']['diff'] == pytest.approx(0.3)
    # degradations: rPC per seed = noise score / clean
    deg = board['degradations']
    assert deg['baseline']['modalities']['rgb']['rPC']['mean'] == pytest.approx(0.5)
    assert deg['moddrop']['modalities']['rgb']['rPC']['mean'] == pytest.approx(1.0)
    assert deg['moddrop']['vs_baseline']['rgb']['marked'] is True
    assert 'unimodal-rgb' not in deg


def test_paired_differences_against_the_baseline_and_a_control(runs):
    board = lb.aggregate(runs, controls=['moddrop'])
    assert board['controls'] == ['baseline', 'moddrop']
    # moddrop minus baseline, blank rgb, per seed: .4 .4 .4 -> mean .4, no spread
    cell = board['paired']['baseline']['moddrop']['blank']['rgb']
    assert cell['diffs'] == pytest.approx([0.4, 0.4, 0.4])
    assert cell['low'] == pytest.approx(0.4) and cell['excludes_zero'] is True
    # thermal: .6-.7, .6-.8, .6-.6 = -.1 -.2 0: mean -.1, sd .1, t(2) = 4.303:
    # half width 4.303 * .1 / sqrt(3) = .2484 -> [-.3484, +.1484], contains 0
    cell = board['paired']['baseline']['moddrop']['blank']['thermal']
    assert cell['diff'] == pytest.approx(-0.1)
    assert cell['low'] == pytest.approx(-0.1 - 4.303 * 0.1 / 3**0.5)
    assert cell['high'] == pytest.approx(-0.1 + 4.303 * 0.1 / 3**0.5)
    assert cell['excludes_zero'] is False and cell['seeds'] == [0, 1, 2]
    # the mean over subsets, per seed: (.7+.5+.6)/3 - 1.6/3 ... = +.0667 each
    mean = board['paired']['baseline']['moddrop']['blank']['mean']
    assert mean['diff'] == pytest.approx(0.2 / 3)
    # against the control: the baseline minus moddrop is the opposite
    back = board['paired']['moddrop']['baseline']['blank']['thermal']
    assert back['diff'] == pytest.approx(0.1)
    # a ceiling is paired on its own subset only; seeds missing on one side drop
    assert list(board['paired']['baseline']['unimodal-rgb']['blank']) == ['rgb']
    del runs['moddrop'][2]
    board = lb.aggregate(runs)
    assert board['paired']['baseline']['moddrop']['blank']['rgb']['seeds'] == [0, 1]
    text = lb.leaderboard_markdown(board)
    assert 'Paired by seed, minus `baseline` (`blank`)' in text
    assert '| moddrop | 2 | -0.100 [-0.100, -0.100] † | +0.400 [+0.400, +0.400] † |' \
        in text
    with pytest.raises(ValueError, match=r"control\(s\) \['cmpt'\] have no results"):
        lb.aggregate(runs, controls=['cmpt'])
    assert lb.format_paired(dict(diff=0.25, low=None, high=None)) == '+0.250'


def test_aggregate_splits_and_mismatch(runs):
    for r in runs['baseline'] + runs['moddrop']:
        r['splits'] = dict(night=both(0.5, 0.0, 0.5))
    for r in runs['unimodal-rgb']:
        r['splits'] = dict(night=dict(blank={'rgb': 0.2}, missing={'rgb': 0.2}))
    board = lb.aggregate(runs)
    night = board['splits']['night']
    assert night['variants']['baseline']['scenarios']['missing']['scores']['rgb'][
        'mean'] == 0.0
    assert night['ceilings']['rgb']['blank']['mean'] == pytest.approx(0.2)
    assert night['variants']['moddrop']['scenarios']['blank']['fraction_of_ceiling'][
        'thermal'] is None
    runs['moddrop'][0]['metric'] = 'coco/bbox_mAP'
    with pytest.raises(ValueError, match='different metrics'):
        lb.aggregate(runs)
    with pytest.raises(ValueError, match='no results'):
        lb.aggregate({})


def test_writers(runs, tmp_path):
    board = lb.aggregate(runs)
    paths = lb.write_leaderboard(board, str(tmp_path), extra=dict(command='x'))
    text = open(paths['markdown']).read()
    assert '## Scenario `blank`' in text and '## Scenario `missing`' in text
    # baseline, blank: rgb .2 ± .1; mean .567 ± .033; PCR 43.8 ± 6.3; rgb 40 %
    assert ('| baseline | 0.800 ± 0.000 | 0.200 ± 0.100 | 0.700 ± 0.100 | '
            '0.567 ± 0.033 | 43.8 ± 6.2 | 40 | n/a |') in text
    # moddrop, marked where it differs by more than two standard errors. blank:
    # mean .633 vs .567 (both std .033): diff .067 > 2 sqrt(2 .033^2 / 3) = .054;
    # PCR per seed 21.4, 14.3, 7.1 vs 50, 37.5, 43.75: marked; rgb 120 % of .5:
    # above the ceiling, said so
    assert ('| moddrop | 0.700 ± 0.000 * | 0.600 ± 0.100 * | 0.600 ± 0.000 | '
            '0.633 ± 0.033 * | 14.3 ± 7.1 * | above | n/a |') in text
    # missing: rgb .4 .5 .6, mean .600 vs .567: diff .033 < .054, not marked
    assert ('| moddrop | 0.700 ± 0.000 * | 0.500 ± 0.100 * | 0.600 ± 0.000 | '
            '0.600 ± 0.033 | 21.4 ± 7.1 * | 100 | n/a |') in text
    assert '| unimodal-rgb (ceiling) |  | 0.500 ± 0.100 * |  |  |  |  |  |' in text
    assert '## Degradations' in text
    assert '| moddrop | all | 0.700 ± 0.000 | 100.0 ± 0.0 * | 100.0 ± 0.0 |' in text
    data = json.load(open(paths['json']))
    assert data['command'] == 'x'
    assert data['variants']['moddrop']['scenarios']['blank']['scores']['rgb'][
        'values'] == [0.5, 0.6, 0.7]
    assert osp.getsize(paths['chart']) > 1000
    with pytest.raises(ValueError, match=r"extra keys \['variants'\]"):
        lb.write_leaderboard(board, str(tmp_path), extra=dict(variants=[]))
    assert lb.format_stats(seed_statistics([0.25])) == '0.250'
    assert lb.format_stats(None) == 'n/a'


def test_progress_lines():
    assert [lb.format_duration(s) for s in (54.4, 89, 120, 5300, 5390, 7500)
            ] == ['54 s', '89 s', '2 min', '88 min', '1 h 30 min', '2 h 5 min']
    progress = lb.Progress(total=4, to_do=3)
    assert progress.line('baseline', 0, None) == (
        '[leaderboard] run 1/4 baseline seed 0: finished before, skipped; time left '
        'not known yet')
    assert progress.line(
        'moddrop', 0,
        60.0) == ('[leaderboard] run 2/4 moddrop seed 0: 60 s; about 2 min left')
    assert progress.line(
        'baseline', 1,
        30.0) == ('[leaderboard] run 3/4 baseline seed 1: 30 s; about 45 s left')
    assert progress.line('moddrop', 1, 50.0).endswith('seed 1: 50 s; nothing left')

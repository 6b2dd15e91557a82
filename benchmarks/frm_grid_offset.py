"""Does FRM measure the scene or the JPEG block grid? FRM per image for patch-grid
offsets 0..7, and the dominance verdict (which modality has the higher FRM).

JPEG stores an image as 8x8 DCT blocks; FRM's 8x8 patch grid at offset 0 sits on
them when an image is fed at its stored size, and the high band of a quantised block
is mostly quantisation residue. For each dataset the images go through the config's
test pipeline (the synthetic config: at the data's own size, as in training) and the
model's data preprocessor (normalisation and padding, what a branch receives); then
per image and modality FRM is computed as ``MWAMHook`` does (paper mode, divided by
the channel count) with the grid at offset ``(o, o)``, ``o = 0..7``.

    python benchmarks/frm_grid_offset.py [--synthetic-root DIR] [--num-synthetic N]
        [--llvip-root DIR] [--m3fd-root DIR] [--json OUT]

Printed per dataset and offset: the median per-image FRM of each modality, its ratio
to offset 0, the share of images in which thermal has the higher FRM, and the share
whose verdict differs from offset 0's. The LLVIP and M3FD defaults are the few real
files in ``tests/data`` (any folder of the same layout can be given).
"""
import argparse
import json
import os.path as osp
import statistics
import sys

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, MODELS, init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import mwam_mm  # noqa: F401,E402
from benchmarks import leaderboard as lb  # noqa: E402
from mwam_mm.engine.runner_utils import positive_int  # noqa: E402
from mwam_mm.frm import frequency_ratio_metric  # noqa: E402
from mwam_mm.modality import ModalityLayout  # noqa: E402

DETECTION = osp.join(ROOT, 'configs', 'detection')
#: (rows, columns); the diagonal the issue asks for, and the grid on the JPEG blocks
#: in one axis only (what a random offset gives in 15 of 64 draws)
OFFSETS = [(o, o) for o in range(8)] + [(0, 4), (4, 0)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--synthetic-root',
        help='default: the demo\'s data (made '
        'if absent, 128x96)')
    parser.add_argument('--num-synthetic', type=positive_int, default=96)
    parser.add_argument('--llvip-root', default=osp.join(ROOT, 'tests/data/llvip_mini'))
    parser.add_argument('--m3fd-root', default=osp.join(ROOT, 'tests/data/m3fd_mini'))
    parser.add_argument('--json', help='also write the figures here')
    return parser.parse_args(argv)


def dataset_inputs(cfg_path: str,
                   data_root: str,
                   dataset_overrides: dict,
                   limit: int = None):
    """The preprocessed test inputs of ``cfg_path``'s dataset at ``data_root``,
    one ``(1, C, H, W)`` tensor per image, and the model's modality layout."""
    cfg = Config.fromfile(cfg_path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.update(data_root=data_root, **dataset_overrides)
    dataset = DATASETS.build(dataset_cfg)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    layout = ModalityLayout.build(cfg.model.backbone.get('modalities'))
    count = len(dataset) if limit is None else min(limit, len(dataset))
    inputs = []
    for index in range(count):
        batch = preprocessor(pseudo_collate([dataset[index]]), training=False)
        inputs.append(batch['inputs'])
    return inputs, layout


def per_image_frm(inputs, layout):
    """``{offset: {modality: [FRM per image]}}`` as MWAMHook computes it."""
    table = {}
    for offset in OFFSETS:
        per = {name: [] for name in layout.names}
        for tensor in inputs:
            parts = layout.split(tensor, dim=1)
            for name, part in parts.items():
                value = frequency_ratio_metric(part, grid_offset=offset)
                per[name].append(float(value) / part.shape[1])
        table[offset] = per
    return table


def summarise(table, names):
    first, second = names  # verdict: does the second (thermal) dominate?
    verdict = {
        o: [b > a for a, b in zip(per[first], per[second])]
        for o, per in table.items()
    }
    rows = []
    for offset, per in table.items():
        row = dict(offset=offset)
        for name in names:
            median = statistics.median(per[name])
            row[f'median_{name}'] = median
            row[f'ratio_{name}'] = median / statistics.median(table[(0, 0)][name])
        row[f'{second}_dominant'] = sum(verdict[offset]) / len(verdict[offset])
        row['verdict_changed_vs_0'] = sum(
            a != b
            for a, b in zip(verdict[offset], verdict[(0, 0)])) / len(verdict[(0, 0)])
        rows.append(row)
    # over the offsets 1..7: does an image's verdict depend on where the grid is?
    shifted = [o for o in OFFSETS if 0 not in o]
    stable = [
        len({verdict[o][i]
             for o in shifted}) == 1 for i in range(len(verdict[(0, 0)]))
    ]
    return rows, sum(stable) / len(stable)


def print_rows(name, count, rows, stable, names):
    print(f'\n{name} ({count} images)')
    head = ['offset'] + [f'median FRM {n}' for n in names] + \
        [f'/ (0, 0) ({n})' for n in names] + \
        [f'{names[1]} dominant', 'verdict != (0, 0)']
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '---|' * len(head))
    for row in rows:
        cells = [str(tuple(row['offset']))]
        cells += [f'{row[f"median_{n}"]:.3g}' for n in names]
        cells += [f'{row[f"ratio_{n}"]:.3f}' for n in names]
        cells += [
            f'{100 * row[f"{names[1]}_dominant"]:.0f} %',
            f'{100 * row["verdict_changed_vs_0"]:.0f} %'
        ]
        print('| ' + ' | '.join(cells) + ' |')
    print(f'images with the same verdict at every offset (1, 1)..(7, 7): '
          f'{100 * stable:.0f} %')


def main(argv=None):
    args = parse_args(argv)
    synthetic_root = args.synthetic_root
    params = dict(lb.SYNTHETIC_DEFAULTS, width=128, height=96)
    if synthetic_root is None:
        synthetic_root = lb.default_synthetic_root(**params)
        lb.ensure_synthetic_data(synthetic_root, **params)
    synthetic_cfg = lb.SYNTHETIC_CONFIG
    jobs = [
        ('synthetic (training images, 128x96 JPEG, no resize)', synthetic_cfg,
         synthetic_root,
         dict(
             data_prefix=dict(
                 img='visible/train', thermal='infrared/train', ann='Annotations'),
             pipeline=[
                 dict(type='LoadRGBTImagePair'),
                 dict(type='LoadAnnotations', with_bbox=True),
                 dict(type='PackDetInputs')
             ]), args.num_synthetic),
        ('LLVIP (train pairs, 1280x1024 JPEG -> 640x512)',
         osp.join(DETECTION,
                  'retinanet_dual-r18_fpn_1xb8-12e_llvip.py'), args.llvip_root,
         dict(
             data_prefix=dict(
                 img='visible/train', thermal='infrared/train', ann='Annotations')),
         None),
        ('M3FD (1024x768 PNG -> 640x480)',
         osp.join(DETECTION, 'retinanet_dual-r18_fpn_1xb8-12e_m3fd.py'), args.m3fd_root,
         dict(ann_file=''), None),
    ]
    report = {}
    for name, cfg_path, root, overrides, limit in jobs:
        inputs, layout = dataset_inputs(cfg_path, root, overrides, limit)
        table = per_image_frm(inputs, layout)
        rows, stable = summarise(table, layout.names)
        print_rows(name, len(inputs), rows, stable, layout.names)
        report[name] = dict(
            root=root,
            images=len(inputs),
            shape=list(inputs[0].shape),
            rows=rows,
            same_verdict_off_the_grid=stable)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    torch.set_num_threads(1)
    main()

"""Write a config's training samples as its train pipeline makes them.

    python tools/browse_dataset.py CONFIG --out-dir DIR [--max-samples N]
        [--split train|val|test] [--blend ALPHA] [--cfg-options k=v ...]

One image per sample, DIR/<index>_<name>.png: RGB and thermal side by side (or
--blend ALPHA: one blended panel) after the pipeline's augmentation, with the
ground-truth boxes (detection) or masks (segmentation) as the pipeline leaves them,
so what an augmentation does to both modalities can be seen. Modality dropout in
the data preprocessor (model.data_preprocessor.modality_dropout) is not part of the
pipeline and is not shown; a pipeline ModalityDropout(level='input') is.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, VISUALIZERS, DefaultScope

import mwam_mm  # noqa: F401  (registers the components)
from mwam_mm.apis.inference import task_scope
from mwam_mm.engine import explain_registry_errors
from mwam_mm.engine.runner_utils import positive_int
from mwam_mm.visualization.rgbt_visualizer import (DEFAULT_VISUALIZERS,
                                                   draw_boxes_as_tensors)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--out-dir', required=True, help='where the images go')
    parser.add_argument(
        '--split',
        choices=['train', 'val', 'test'],
        default='train',
        help='which dataloader\'s dataset and pipeline (default: train)')
    parser.add_argument(
        '--max-samples',
        type=positive_int,
        help='stop after this many samples (default: all)')
    parser.add_argument(
        '--blend',
        type=float,
        metavar='ALPHA',
        help='blend the modalities (ALPHA * RGB + (1 - ALPHA) * thermal) '
        'instead of side by side')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def pipeline_layout(pipeline) -> object:
    """The ``modalities`` of the pipeline's loading step (None: the default)."""
    for step in pipeline:
        if str(step.get('type', '')).split('.')[-1].startswith('LoadRGBTImagePair'):
            return step.get('modalities')
    return None


def browse(config: str,
           out_dir: str,
           split: str = 'train',
           max_samples=None,
           blend=None,
           cfg_options=None) -> list:
    """Write the samples; returns the files written."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = task_scope(cfg)
    dataset_cfg = cfg[f'{split}_dataloader'].dataset
    with DefaultScope.overwrite_default_scope(scope), explain_registry_errors():
        dataset = DATASETS.build(dataset_cfg)
    inner = dataset_cfg
    while 'pipeline' not in inner and 'dataset' in inner:  # wrappers
        inner = inner.dataset
    visualizer = VISUALIZERS.get(DEFAULT_VISUALIZERS[scope])(
        name=f'browse_dataset_{id(dataset)}',
        modalities=pipeline_layout(inner.get('pipeline', [])),
        blend_alpha=blend)
    meta = dict(dataset.metainfo)
    if scope == 'mmseg':
        visualizer.set_dataset_meta(
            classes=meta.get('classes'), palette=meta.get('palette'))
    else:
        visualizer.dataset_meta = meta
    os.makedirs(out_dir, exist_ok=True)
    count = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    written = []
    for index in range(count):
        with DefaultScope.overwrite_default_scope(scope):
            item = dataset[index]
        sample = draw_boxes_as_tensors(item['data_samples'])
        image = item['inputs'].numpy().transpose(1, 2, 0)
        meta = sample.metainfo
        source = meta.get('img_path') or meta.get('stacked_path') or str(index)
        out = osp.join(out_dir, f'{index:05d}_{osp.splitext(osp.basename(source))[0]}'
                       '.png')
        visualizer.add_datasample(
            'sample', image, sample, draw_gt=True, draw_pred=False, out_file=out)
        written.append(out)
    return written


def main(argv=None):
    args = parse_args(argv)
    written = browse(args.config, args.out_dir, args.split, args.max_samples,
                     args.blend, args.cfg_options)
    print(f'written {len(written)} image(s) to {args.out_dir}')


if __name__ == '__main__':
    main()

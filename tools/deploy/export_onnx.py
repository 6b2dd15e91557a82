"""Export a trained RGB-T detector or segmentor to ONNX.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out model.onnx
        [--shape H W] [--dynamic-batch] [--no-presence] [--with-logits]
        [--opset 18] [--no-verify] [--cfg-options k=v ...]

Writes model.onnx and model.json (next to it: the inputs, outputs, the
preprocessing the graph does not contain, and the config). Inputs: ``image``
(the preprocessed batch), for detectors ``image_shape`` and ``scale_factor``,
and ``presence`` (B x modalities, bool: False = that camera is missing) unless
--no-presence. Outputs: boxes, scores, labels after NMS (detection); seg_map and,
with --with-logits, seg_logits (segmentation). Run it with
``tools/infer.py CONFIG model.onnx --backend onnxruntime``; see docs/deploy.md.
"""
import argparse
import sys

from mmengine.config import DictAction

import mwam_mm  # noqa: F401  (registers the components)
from mwam_mm.apis import init_rgbt_model
from mwam_mm.engine.runner_utils import int_at_least, positive_int


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='the trained weights (.pth)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument(
        '--shape',
        nargs=2,
        type=positive_int,
        metavar=('H', 'W'),
        help='network input size after resize and padding (default: the test '
        "pipeline's Resize scale, padded as the data preprocessor pads)")
    parser.add_argument(
        '--dynamic-batch', action='store_true', help='a dynamic batch dimension')
    parser.add_argument(
        '--no-presence',
        action='store_true',
        help='no presence input (a missing camera can then only be blanked)')
    parser.add_argument(
        '--with-logits', action='store_true', help='segmentation: also seg_logits')
    parser.add_argument(
        '--opset', type=int_at_least(16), default=18, help='ONNX opset (>= 16)')
    parser.add_argument(
        '--no-verify',
        action='store_true',
        help='skip the ONNX Runtime vs PyTorch check on the example input')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if not args.out.endswith('.onnx'):
        parser.error(f'--out {args.out}: the file name must end in .onnx')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mwam_mm.deploy import ExportError, export_onnx, meta_path
    model = init_rgbt_model(args.config, args.checkpoint, 'cpu', args.cfg_options)
    try:
        meta = export_onnx(
            model,
            args.out,
            shape=args.shape,
            dynamic_batch=args.dynamic_batch,
            with_presence=not args.no_presence,
            with_logits=args.with_logits,
            opset=args.opset,
            verify=not args.no_verify)
    except ExportError as error:
        sys.exit(f'export_onnx: {error}')
    print(f'written {args.out} and {meta_path(args.out)}')
    print('inputs: ' + ', '.join(f'{name} {spec["shape"]} {spec["dtype"]}'
                                 for name, spec in meta['inputs'].items()))
    print('outputs: ' + ', '.join(meta['outputs']))
    if 'verify' in meta:
        print('ONNX Runtime vs PyTorch on the example input (max |difference| of '
              'float outputs, differing entries of integer ones): ' +
              ', '.join(f'{k} {v:.3g}' for k, v in meta['verify'].items()))


if __name__ == '__main__':
    main()

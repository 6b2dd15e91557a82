"""Write the synthetic RGB-T street-scene dataset (detection: LLVIP layout;
segmentation: MFNet layout).

    python tools/make_synthetic_rgbt.py data/synthetic_rgbt --seed 0 \
        --num-train 400 --num-test 100 --width 160 --height 128 --night-fraction 0.5
    python tools/make_synthetic_rgbt.py data/synthetic_rgbt_seg --task segmentation
"""
import argparse
import json

from mwam_mm.datasets.synthetic import CLASSES, LAYOUTS, make_synthetic_rgbt
from mwam_mm.engine.runner_utils import non_negative_int, positive_int, synthetic_side


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'out_dir',
        help='folder to write (detection: LLVIP layout; segmentation: MFNet)')
    parser.add_argument(
        '--task',
        choices=list(LAYOUTS),
        default='detection',
        help='detection: boxes in the LLVIP layout; segmentation: label maps in '
        'the MFNet layout (the same scenes)')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--num-train', type=positive_int, default=400)
    parser.add_argument('--num-test', type=positive_int, default=100)
    parser.add_argument('--width', type=synthetic_side, default=160)
    parser.add_argument('--height', type=synthetic_side, default=128)
    parser.add_argument('--night-fraction', type=float, default=0.5)
    parser.add_argument('--classes', nargs='+', default=list(CLASSES), choices=CLASSES)
    return parser.parse_args(argv)


def main():
    args = parse_args()
    counts = make_synthetic_rgbt(
        args.out_dir,
        seed=args.seed,
        num_train=args.num_train,
        num_test=args.num_test,
        width=args.width,
        height=args.height,
        night_fraction=args.night_fraction,
        classes=args.classes,
        task=args.task)
    print(json.dumps(dict(out_dir=args.out_dir, **counts)))


if __name__ == '__main__':
    main()

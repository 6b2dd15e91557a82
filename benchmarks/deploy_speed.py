"""Latency of PyTorch and ONNX Runtime on this CPU, side by side.

Each model is exported once (tools/deploy/export_onnx.py's code), then both
backends take turns (which one goes first alternates) on the same preprocessed
batch of 1: PyTorch's ``model.predict`` under ``torch.no_grad`` and ONNX
Runtime's ``session.run`` of the graph, post-processing (NMS) included in both,
the same number of threads. One JSON line per model gives the median and
quartiles of each and the ratio of the medians, the figure to quote.

    python benchmarks/deploy_speed.py [--models llvip synthetic]
        [--repeats 30] [--warmup 5] [--threads N] [--checkpoint NAME=PATH ...]

Without a checkpoint a model keeps mmdet's initialisation (RetinaNet's prior
makes every score 0.01, below score_thr: NMS gets no boxes in either backend);
``--checkpoint synthetic=work_dirs/.../epoch_12.pth`` times trained weights.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time

import numpy as np
import torch

import mwam_mm  # noqa: F401
from mwam_mm.apis import init_rgbt_model
from mwam_mm.deploy import ONNXRuntimeRGBTModel, export_onnx
from mwam_mm.deploy.export import data_sample, example_inputs
from mwam_mm.engine.runner_utils import non_negative_int, positive_int

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = {
    # LLVIP's RetinaNet on two ResNet-18 streams at LLVIP's test size
    'llvip': 'configs/detection/retinanet_dual-r18_fpn_1xb8-12e_llvip.py',
    # the demo's slim detector at the synthetic data's 160x128
    'synthetic': 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py',
    'llvip-faster-rcnn': 'configs/detection/faster-rcnn_dual-r18_fpn_1xb8-12e_llvip.py',
    'mfnet-segformer': 'configs/segmentation/segformer_dual-mit-b0_1xb2-160k_mfnet.py',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--models', nargs='+', choices=sorted(MODELS), default=['llvip', 'synthetic'])
    parser.add_argument('--repeats', type=positive_int, default=30)
    parser.add_argument('--warmup', type=non_negative_int, default=5)
    parser.add_argument(
        '--threads',
        type=positive_int,
        default=os.cpu_count(),
        help='threads of both backends (default: every core)')
    parser.add_argument(
        '--checkpoint',
        nargs='+',
        default=[],
        metavar='NAME=PATH',
        help='trained weights for a model, e.g. synthetic=epoch_12.pth')
    return parser.parse_args(argv)


def checkpoints(pairs):
    out = {}
    for pair in pairs:
        name, _, path = pair.partition('=')
        if name not in MODELS or not path:
            raise SystemExit(f'--checkpoint {pair}: give NAME=PATH with NAME one of '
                             f'{sorted(MODELS)}')
        if not osp.isfile(path):
            raise SystemExit(f'--checkpoint {pair}: {path} does not exist')
        out[name] = path
    return out


def quartiles(times):
    q1, median, q3 = np.percentile(np.asarray(times) * 1000, [25, 50, 75])
    return dict(
        median_ms=round(float(median), 2),
        q1_ms=round(float(q1), 2),
        q3_ms=round(float(q3), 2))


def measure(name, config, checkpoint, args, work):
    torch.manual_seed(0)
    model = init_rgbt_model(osp.join(ROOT, config), checkpoint)
    if checkpoint is None:
        model.init_weights()
    model.eval()
    out = osp.join(work, f'{name}.onnx')
    started = time.perf_counter()
    meta = export_onnx(model, out, verify=False)
    export_s = time.perf_counter() - started
    ort_model = ONNXRuntimeRGBTModel(out, threads=args.threads)
    height, width = meta['input_size']
    names = list(ort_model.inputs)
    graph_inputs = example_inputs(names, model.backbone.layout, height, width, 1)
    feeds = {n: v.numpy() for n, v in zip(names, graph_inputs)}
    feeds['presence'][:] = True  # full modality, as the PyTorch call below
    image = graph_inputs[0]
    sample = data_sample(model, height, width)
    sample.set_metainfo(
        dict(pad_shape=(height, width), batch_input_shape=(height, width)))
    samples = [sample]

    def run_torch():
        with torch.no_grad():
            model.predict(image, samples)

    def run_ort():
        ort_model.session.run(None, feeds)

    runs = dict(pytorch=run_torch, onnxruntime=run_ort)
    for _ in range(args.warmup):
        for run in runs.values():
            run()
    times = {k: [] for k in runs}
    for index in range(args.repeats):
        order = list(runs) if index % 2 == 0 else list(runs)[::-1]
        for key in order:
            started = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - started)
    ratio = statistics.median(times['pytorch']) / statistics.median(
        times['onnxruntime'])
    return dict(
        model=name,
        config=config,
        weights=checkpoint or 'initialisation',
        input=f'1x{model.backbone.layout.num_channels}x{height}x{width}',
        threads=args.threads,
        repeats=args.repeats,
        export_s=round(export_s, 1),
        pytorch=quartiles(times['pytorch']),
        onnxruntime=quartiles(times['onnxruntime']),
        speedup=round(ratio, 2))


def main(argv=None):
    args = parse_args(argv)
    weights = checkpoints(args.checkpoint)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.models:
            row = measure(name, MODELS[name], weights.get(name), args, work)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print('\nmodel | input | PyTorch ms (median) | ONNX Runtime ms (median) | speed-up')
    for row in rows:
        print(f'{row["model"]} | {row["input"]} | {row["pytorch"]["median_ms"]} | '
              f'{row["onnxruntime"]["median_ms"]} | {row["speedup"]}x')


if __name__ == '__main__':
    main()

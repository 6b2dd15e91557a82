"""Run a trained RGB-T model on image pairs, folders or videos.

    python tools/infer.py CONFIG CHECKPOINT --rgb PATH --thermal PATH --out-dir DIR
        [--missing rgb|thermal] [--fill zero|mean] [--save-pred] [--score-thr 0.3]
        [--blend ALPHA] [--device cpu] [--backend pytorch|onnxruntime]
        [--cfg-options k=v ...]

With --backend onnxruntime, CHECKPOINT is a model exported by
tools/deploy/export_onnx.py (model.onnx, with its model.json next to it): the
same pipeline, the same --missing (the camera blanked and, through the graph's
presence input, marked missing) and the same drawings, run by ONNX Runtime.

--rgb/--thermal are a pair of image files, two folders (images matched by file name
without extension; every name must have its partner), or two videos (read frame by
frame; equal frame counts). A modality left out, or named in --missing, is the
`missing` scenario: blanked (--fill) and marked missing_modalities.

Writes DIR/vis/<name>.png (RGB and thermal side by side, predictions drawn on both;
--blend A: one blended panel, A * RGB + (1 - A) * thermal), for videos
DIR/vis/<name>.avi (MJPG); with --save-pred DIR/preds/<name>.json (detection: boxes
in original pixels, scores, labels; segmentation: class index per pixel; for a video
one entry per frame).
"""
import argparse
import json
import os
import os.path as osp

import cv2
from mmengine.config import DictAction

import mwam_mm  # noqa: F401  (registers the components)
from mwam_mm.apis import (build_rgbt_visualizer, inference_rgbt, init_rgbt_model,
                          prediction_to_dict)
from mwam_mm.apis.inference import task_scope

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.mpg', '.mpeg', '.wmv', '.m4v')
MODALITIES = ('rgb', 'thermal')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint',
        help='the weights (.pth), or with --backend onnxruntime the exported .onnx')
    parser.add_argument('--rgb', help='RGB image, folder or video')
    parser.add_argument('--thermal', help='thermal image, folder or video')
    parser.add_argument('--out-dir', required=True, help='where the outputs go')
    parser.add_argument(
        '--missing',
        nargs='+',
        choices=MODALITIES,
        default=[],
        help='modalities declared missing (blanked and marked; a modality without '
        'a path is missing)')
    parser.add_argument(
        '--fill',
        choices=['zero', 'mean'],
        default='zero',
        help='what a missing modality becomes (default: zero)')
    parser.add_argument(
        '--save-pred', action='store_true', help='also write predictions as JSON')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: boxes drawn above this score (default 0.3)')
    parser.add_argument(
        '--blend',
        type=float,
        metavar='ALPHA',
        help='blend the modalities (ALPHA * RGB + (1 - ALPHA) * thermal) '
        'instead of side by side')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'onnxruntime'],
        default='pytorch',
        help='run the PyTorch model (default) or an exported ONNX model')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def kind_of(path: str) -> str:
    if osp.isdir(path):
        return 'folder'
    if not osp.exists(path):
        raise FileNotFoundError(f'{path} does not exist')
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return 'image'
    if ext in VIDEO_EXTENSIONS:
        return 'video'
    raise ValueError(f'{path}: not an image ({", ".join(IMAGE_EXTENSIONS)}), a '
                     f'video ({", ".join(VIDEO_EXTENSIONS)}) or a folder')


def _listing(names, limit=10) -> str:
    names = sorted(names)
    more = len(names) - limit
    return ', '.join(names[:limit]) + (f' ... ({more} more)' if more > 0 else '')


def images_by_stem(folder: str) -> dict:
    """``{name without extension: file}`` of the images in ``folder``."""
    found = {}
    for name in sorted(os.listdir(folder)):
        if osp.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
            continue
        stem = osp.splitext(name)[0]
        if stem in found:
            raise ValueError(f'{folder}: two images named {stem!r} '
                             f'({osp.basename(found[stem])}, {name}); names must '
                             'identify the pairs')
        found[stem] = osp.join(folder, name)
    if not found:
        raise ValueError(f'{folder}: no images ({", ".join(IMAGE_EXTENSIONS)})')
    return found


def match_folders(folders: dict) -> list:
    """``[(stem, {modality: file})]`` for folders matched by file name."""
    listed = {m: images_by_stem(f) for m, f in folders.items()}
    stems = set.intersection(*(set(v) for v in listed.values()))
    unmatched = {m: sorted(set(v) - stems) for m, v in listed.items() if set(v) - stems}
    if unmatched:
        details = '; '.join(
            f'only in the {m} folder {folders[m]} ({len(names)}): {_listing(names)}'
            for m, names in unmatched.items())
        raise ValueError(f'the folders do not hold the same image names: {details}. '
                         'Pairs are matched by file name (without extension)')
    return [(stem, {m: listed[m][stem] for m in listed}) for stem in sorted(stems)]


def open_video(path: str):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ValueError(f'cannot open the video {path}')
    return cap


def check_videos(videos: dict) -> None:
    """Refuse videos that cannot be opened or whose frame counts differ."""
    counts = {}
    for m, path in videos.items():
        cap = open_video(path)
        counts[m] = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    if len(set(counts.values())) > 1 and min(counts.values()) > 0:
        raise ValueError('the videos have different frame counts: ' +
                         ', '.join(f'{videos[m]} ({m}) {n}'
                                   for m, n in counts.items()) +
                         '; RGB-T videos must be frame-aligned')


def video_frames(videos: dict):
    """Yield ``{modality: frame}`` of videos read together (checked by
    :func:`check_videos`); refuse videos that end at different frames (a
    container's frame count can be wrong)."""
    caps = {m: open_video(p) for m, p in videos.items()}
    try:
        index = 0
        while True:
            read = {m: c.read() for m, c in caps.items()}
            ended = [m for m, (ok, _) in read.items() if not ok]
            if len(ended) == len(read):
                return
            if ended:
                going = [m for m in read if m not in ended]
                raise ValueError(
                    f'the videos have different frame counts: {", ".join(ended)} '
                    f'ended after {index} frames, {", ".join(going)} goes on (' +
                    ', '.join(f'{m}: {videos[m]}' for m in read) + ')')
            yield {m: frame for m, (_, frame) in read.items()}
            index += 1
    finally:
        for cap in caps.values():
            cap.release()


def resolve_inputs(args) -> tuple:
    """The mode ('pair', 'folders', 'videos'), the given paths and the missing
    modalities."""
    given = {m: getattr(args, m) for m in MODALITIES if getattr(args, m)}
    if not given:
        raise ValueError('give --rgb and/or --thermal')
    missing = list(
        dict.fromkeys(list(args.missing) + [m for m in MODALITIES if m not in given]))
    if len(missing) == len(MODALITIES):
        raise ValueError(f'every modality is missing ({missing}); give at least '
                         'one image')
    kinds = {m: kind_of(p) for m, p in given.items()}
    if len(set(kinds.values())) > 1:
        raise ValueError('--rgb and --thermal must be of one kind (two images, two '
                         'folders or two videos), got ' +
                         ', '.join(f'{m} {given[m]} ({k})' for m, k in kinds.items()))
    mode = dict(
        image='pair', folder='folders', video='videos')[next(iter(kinds.values()))]
    return mode, given, missing


def write_json(path: str, content) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(content, f)


def infer(args) -> list:
    """Run the tool; returns the files written."""
    mode, given, missing = resolve_inputs(args)
    # the inputs are checked before the model is built
    if mode == 'pair':
        stem = osp.splitext(osp.basename(next(iter(given.values()))))[0]
        pairs = [(stem, given)]
    elif mode == 'folders':
        pairs = match_folders(given)
    else:
        check_videos(given)
    model = init_rgbt_model(
        args.config,
        args.checkpoint,
        args.device,
        args.cfg_options,
        backend=args.backend)
    visualizer = build_rgbt_visualizer(model, blend_alpha=args.blend)
    detection = task_scope(model.cfg) == 'mmdet'
    options = dict(pred_score_thr=args.score_thr) if detection else {}
    vis_dir, pred_dir = osp.join(args.out_dir, 'vis'), osp.join(args.out_dir, 'preds')
    os.makedirs(vis_dir, exist_ok=True)
    written = []

    def run(images: dict):
        pair = {m: images.get(m) for m in MODALITIES}
        sample, stacked = inference_rgbt(
            model,
            pair['rgb'],
            pair['thermal'],
            missing=missing,
            fill=args.fill,
            return_images=True)
        visualizer.add_datasample('result', stacked, sample, draw_gt=False, **options)
        return sample, visualizer.get_image()

    def record(sample, paths=None, frame=None):
        pred = prediction_to_dict(sample, model.dataset_meta)
        pred.update(missing=missing)
        if paths:
            pred.update({m: p for m, p in paths.items()})
        if frame is not None:
            pred = dict(frame=frame, **pred)
        return pred

    if mode in ('pair', 'folders'):
        for stem, paths in pairs:
            sample, drawn = run(paths)
            out = osp.join(vis_dir, stem + '.png')
            cv2.imwrite(out, drawn[..., ::-1])
            written.append(out)
            if args.save_pred:
                out = osp.join(pred_dir, stem + '.json')
                write_json(out, record(sample, paths))
                written.append(out)
    else:
        first = next(iter(given.values()))
        stem = osp.splitext(osp.basename(first))[0]
        cap = open_video(first)
        fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
        cap.release()
        out = osp.join(vis_dir, stem + '.avi')
        writer, frames = None, []
        try:
            for index, images in enumerate(video_frames(given)):
                sample, drawn = run(images)
                if writer is None:
                    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*'MJPG'), fps,
                                             (drawn.shape[1], drawn.shape[0]))
                writer.write(drawn[..., ::-1].copy())
                if args.save_pred:
                    frames.append(record(sample, frame=index))
        finally:
            if writer is not None:
                writer.release()
        if writer is None:
            raise ValueError(f'the video {first} has no frames')
        written.append(out)
        if args.save_pred:
            path = osp.join(pred_dir, stem + '.json')
            write_json(path, dict(given, missing=missing, frames=frames))
            written.append(path)
    return written


def main(argv=None):
    args = parse_args(argv)
    written = infer(args)
    print(f'written {len(written)} file(s) under {args.out_dir}:')
    for path in written[:20]:
        print(f'  {path}')
    if len(written) > 20:
        print(f'  ... ({len(written) - 20} more)')


if __name__ == '__main__':
    main()

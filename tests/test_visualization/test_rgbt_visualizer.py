"""The RGB-T visualisers: the same boxes and masks at the same place on every
modality, the layout of the output image, and TensorBoard logging."""
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample

import mwam_mm  # noqa: F401
from mwam_mm.visualization import (RGBTDetLocalVisualizer, RGBTSegLocalVisualizer,
                                   modality_views)
from tests.test_apis.test_inference import trained_detector, trained_segmentor

H, W = 40, 50


def stacked(rgb_bgr=(255, 0, 0), thermal=90):
    """An H x W x 4 image: RGB stored BGR (blue by default), then grey thermal."""
    img = np.zeros((H, W, 4), np.uint8)
    img[..., :3] = rgb_bgr
    img[..., 3] = thermal
    return img


def det_sample(gt_box=None, pred_box=None):
    sample = DetDataSample()
    if gt_box is not None:
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([gt_box], dtype=torch.float32),
            labels=torch.tensor([0]))
    if pred_box is not None:
        sample.pred_instances = InstanceData(
            bboxes=torch.tensor([pred_box], dtype=torch.float32),
            labels=torch.tensor([1]),
            scores=torch.tensor([0.9]))
    return sample


def det_visualizer(**kwargs):
    visualizer = RGBTDetLocalVisualizer(name='test_rgbt_det', **kwargs)
    visualizer.dataset_meta = dict(
        classes=('person', 'vehicle'), palette=[(220, 20, 60), (0, 255, 0)])
    return visualizer


def changed(drawn_panel, view):
    """Where drawing changed a panel: an H x W bool mask."""
    return (drawn_panel.astype(int) != view.astype(int)).any(axis=2)


def panels(image, count):
    assert image.shape == (H, W * count, 3)
    return [image[:, i * W:(i + 1) * W] for i in range(count)]


def test_modality_views_follow_the_layout():
    rgb, thermal = modality_views(stacked(), mwam_mm.ModalityLayout.build(None))
    assert tuple(rgb[0, 0]) == (0, 0, 255)  # stored BGR blue, shown RGB blue
    assert tuple(thermal[0, 0]) == (90, 90, 90)  # grey to 3 channels


def test_the_same_box_at_the_same_place_on_both_halves():
    visualizer = det_visualizer()
    image = stacked()
    views = modality_views(image, visualizer.layout)
    visualizer.add_datasample(
        'x', image, det_sample(gt_box=[8, 6, 30, 28]), draw_pred=False)
    rgb, thermal = panels(visualizer.get_image(), 2)  # GT only: [rgb | thermal]
    on_rgb, on_thermal = changed(rgb, views[0]), changed(thermal, views[1])
    assert on_rgb.any()
    assert np.array_equal(on_rgb, on_thermal)
    rows, cols = np.nonzero(on_rgb)
    # the box's edges (line width 3) and its label, inside the image
    assert on_rgb[6, 8:31].all() and on_rgb[6:29, 30].all()
    assert abs(cols.min() - 8) <= 2 and rows.max() <= 30
    # untouched pixels keep each modality's own image
    assert tuple(rgb[35, 45]) == (0, 0, 255) and tuple(thermal[35, 45]) == (90, ) * 3


def test_ground_truth_left_prediction_right_each_an_rgb_thermal_pair(tmp_path):
    visualizer = det_visualizer()
    image = stacked()
    views = modality_views(image, visualizer.layout)
    out = str(tmp_path / 'pair.png')
    visualizer.add_datasample(
        'x',
        image,
        det_sample(gt_box=[2, 2, 15, 15], pred_box=[30, 20, 45, 35]),
        out_file=out)
    gt_rgb, gt_thermal, pred_rgb, pred_thermal = panels(visualizer.get_image(), 4)
    for panel, view in ((gt_rgb, views[0]), (gt_thermal, views[1])):
        mask = changed(panel, view)
        assert mask[2, 2:16].all() and not mask[30:, 40:].any()
    for panel, view in ((pred_rgb, views[0]), (pred_thermal, views[1])):
        mask = changed(panel, view)
        assert mask[20, 30:46].all() and not mask[:10, :10].any()
    assert np.array_equal(changed(pred_rgb, views[0]), changed(pred_thermal, views[1]))
    import cv2
    written = cv2.imread(out)
    assert written.shape == (H, 4 * W, 3)
    assert np.array_equal(written[..., ::-1], visualizer.get_image())


def test_blended_panels():
    visualizer = det_visualizer(blend_alpha=0.25)
    visualizer.add_datasample(
        'x', stacked(), det_sample(gt_box=[2, 2, 15, 15], pred_box=[30, 20, 45, 35]))
    gt, pred = panels(visualizer.get_image(), 2)
    # 0.25 * RGB blue (0, 0, 255) + 0.75 * grey 90
    assert tuple(gt[35, 45]) == (68, 68, 131)
    with pytest.raises(ValueError, match='blend_alpha must be in'):
        det_visualizer(blend_alpha=1.5)


def test_segmentation_masks_on_both_halves():
    visualizer = RGBTSegLocalVisualizer(
        name='test_rgbt_seg',
        classes=('background', 'person'),
        palette=[[0, 0, 0], [0, 255, 0]])
    image = stacked()
    views = modality_views(image, visualizer.layout)
    seg = torch.full((1, H, W), 255, dtype=torch.long)  # ignored: not drawn
    seg[0, 10:30, 5:20] = 1
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=seg)
    sample.pred_sem_seg = PixelData(data=seg.clone())
    visualizer.add_datasample('x', image, sample, with_labels=False)
    drawn = panels(visualizer.get_image(), 4)  # GT rgb, GT thermal, pred ...
    colour = np.zeros((H, W, 3), np.uint8)
    colour[10:30, 5:20] = (0, 255, 0)
    for i, panel in enumerate(drawn):  # mmseg's blend, the mask at one place
        view = views[i % 2]
        alpha = visualizer.alpha
        assert np.array_equal(panel,
                              (view * (1 - alpha) + colour * alpha).astype(np.uint8))


def test_a_3_channel_image_is_replaced_by_the_samples_files(synthetic_root):
    """What the stock hooks pass (the RGB file alone) is re-read as the pair."""
    import cv2
    rgb = sorted(glob.glob(osp.join(synthetic_root, 'visible', 'test', '*.jpg')))[0]
    thermal = rgb.replace('visible', 'infrared')
    visualizer = det_visualizer()
    sample = det_sample(gt_box=[2, 2, 15, 15])
    sample.set_metainfo(dict(img_path=rgb, thermal_path=thermal))
    visualizer.add_datasample('x', cv2.imread(rgb)[..., ::-1], sample, draw_pred=False)
    drawn = visualizer.get_image()
    height, width = cv2.imread(rgb).shape[:2]
    assert drawn.shape == (height, 2 * width, 3)
    corner = drawn[height // 2:, width + width // 2:]  # away from the box
    assert (corner[..., 0] == corner[..., 1]).all()  # the thermal panel is grey
    with pytest.raises(ValueError, match='does not name every modality'):
        visualizer.add_datasample('x', np.zeros((H, W, 3), np.uint8), det_sample())


def test_tensorboard_gets_losses_and_balancing_scalars(tmp_path_factory,
                                                       synthetic_root):
    """A short training with TensorboardVisBackend: mmengine's LoggerHook sends
    the message hub's scalars (the balancing hooks' among them) to the backend."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    detector = trained_detector(tmp_path_factory, synthetic_root)
    # later runners of the test session may add files of their own (mmengine
    # shares one visualizer per process): the training's is the one with its tags
    events = glob.glob(
        osp.join(detector['work'], '*', 'vis_data', 'events.out.tfevents.*'))
    assert events
    accumulators = []
    for path in sorted(events):
        accumulator = EventAccumulator(path)
        accumulator.Reload()
        accumulators.append(accumulator)
    training = [a for a in accumulators if 'mwam_k_rgb' in a.Tags()['scalars']]
    assert len(training) == 1, events
    tags = set(training[0].Tags()['scalars'])
    # tags as the LoggerHook names them (no 'train/' prefix)
    assert {
        'loss', 'loss_cls', 'lr', 'mwam_k_rgb', 'mwam_k_thermal', 'mwam_frm_rgb',
        'grad_norm_rgb', 'grad_norm_thermal'
    } <= tags, sorted(tags)
    steps = [e.step for e in training[0].Scalars('mwam_k_rgb')]
    assert steps == [1, 2]


def test_the_validation_hook_draws_the_pair(tmp_path_factory, synthetic_root, tmp_path):
    from mmengine.config import Config

    from mwam_mm.engine import build_runner
    detector = trained_detector(tmp_path_factory, synthetic_root)
    cfg = Config.fromfile(detector['config'])
    cfg.work_dir = str(tmp_path)
    cfg.load_from = detector['checkpoint']
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_dataloader.dataset.indices = 2
    cfg.val_cfg = dict(type='ValLoop')
    cfg.val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='area')
    cfg.default_hooks.visualization = dict(
        type='RGBTDetVisualizationHook', draw=True, interval=1)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer.name = 'test_validation_hook'
    build_runner(cfg).val()
    drawn = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'vis_image', '*.png'))
    assert len(drawn) == 2  # the first sample of each batch (batch size 1)
    import cv2
    assert cv2.imread(drawn[0]).shape == (80, 4 * 96, 3)


def test_the_segmentation_test_loop_draws_every_sample(tmp_path_factory):
    """RGBTSegVisualizationHook, enabled as tools/test.py --show-dir enables it;
    PST900's samples do not carry thermal_path: the pipeline's image is drawn."""
    import cv2
    segmentor = trained_segmentor(tmp_path_factory)
    drawn = sorted(os.listdir(segmentor['show']))
    assert drawn == ['00100.png', '00101.png']
    image = cv2.imread(osp.join(segmentor['show'], drawn[0]))
    assert image.shape == (80, 4 * 96, 3)  # GT | prediction, each rgb | thermal

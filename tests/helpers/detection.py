"""A tiny detection batch (two RGB-T images with boxes) for model tests."""
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

SIZE = 64
BOXES = ([[4., 4., 36., 40.], [30., 26., 62., 60.]], [[10., 12., 50., 44.]])
LABELS = ([0, 1], [1])


def detection_batch(num=2, seed=0):
    """``num`` random 4-channel ``SIZE`` x ``SIZE`` images with the boxes and
    labels above (alternating), as a dataloader gives them."""
    g = torch.Generator().manual_seed(seed)
    images, samples = [], []
    for i in range(num):
        images.append(torch.randint(0, 256, (4, SIZE, SIZE), generator=g).byte())
        sample = DetDataSample(
            metainfo=dict(
                img_id=i,
                img_shape=(SIZE, SIZE),
                ori_shape=(SIZE, SIZE),
                scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(BOXES[i % 2]), labels=torch.tensor(LABELS[i % 2]))
        samples.append(sample)
    return dict(inputs=images, data_samples=samples)

"""RGB-thermal semantic segmentation datasets: MFNet, PST900, FMB."""
import os.path as osp
from typing import Dict, List

from mmengine.registry import DATASETS
from mmseg.datasets import BaseSegDataset

from ..compat.resume import SeededSamplesMixin
from ..presence import check_pipeline_carries_missing
from .camera_check import CameraCheckMixin
from .file_lists import (CaseResolver, list_folder_stems, read_split_lines,
                         refuse_duplicates)
from .rgbt_det import check_classes


class RGBTSegDataset(CameraCheckMixin, SeededSamplesMixin, BaseSegDataset):
    """Aligned RGB-thermal images with one label map each.

    Subclasses say where a sample's files are (:meth:`sample_files`). A data info
    holds ``img_path`` and ``thermal_path`` (separate files) or ``stacked_path`` (one
    multi-channel file, channels in layout order), plus ``seg_map_path``, the keys
    :class:`mwam_mm.datasets.LoadRGBTImagePair` and
    :class:`mwam_mm.datasets.LoadRGBTSegAnnotations` read.

    16-bit (radiometric) thermal files are loaded at full depth and scaled as
    :class:`mwam_mm.datasets.LoadRGBTImagePair`'s ``depth_scaling`` says, alike for
    every dataset class. An index from :class:`mwam_mm.compat.ResumableSampler`
    runs its sample's pipeline under the sample's own random stream
    (:class:`mwam_mm.compat.SeededSamplesMixin`), which makes a resumed epoch draw
    the augmentation of the interrupted one.

    Split files are read as UTF-8 with or without a byte-order mark; a sample
    listed twice is an error naming the file and the lines. File suffixes match
    in any case (``00001D.PNG`` for ``.png``); data infos hold the file names as
    they are on disk.

    Args:
        ann_file (str): Split file, one sample name per line (relative to
            ``data_root``); empty: every label file of the split folder.
        data_prefix (dict): Folders of the dataset (see the subclass).
        img_suffix (str): Suffix of the image files.
        camera_check (str): What to do when a few samples read at full init (up
            to 8, spread over the data list) show a camera of the wrong kind: RGB
            grey in every sampled pair (swapped folders?) or a colour
            (false-colour) thermal image. Stacked files (MFNet's RGBA) are
            checked for grey RGB in their first three channels; their one thermal
            channel cannot be colour. See :mod:`mwam_mm.datasets.camera_check`
            for the tolerances. ``'warn'`` (default) logs a warning naming the
            files, ``'error'`` raises, ``'off'`` reads nothing.
        **kwargs: Arguments of ``mmseg.datasets.BaseSegDataset``
            (``ignore_index``, ``reduce_zero_label``, ...).
    """

    def __init__(self, *args, img_suffix: str = '.png', **kwargs):
        super().__init__(*args, img_suffix=img_suffix, seg_map_suffix='.png', **kwargs)
        check_pipeline_carries_missing(self.pipeline, type(self).__name__)

    def sample_files(self, stem: str) -> Dict[str, str]:
        raise NotImplementedError

    def label_folder(self) -> str:
        return self.data_prefix.get('seg', '')

    def list_stems(self) -> List[str]:
        name = type(self).__name__
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'{name}: split file {self.ann_file} not '
                                        'found')
            entries = [(number, osp.splitext(text)[0])
                       for number, text in read_split_lines(self.ann_file)]
            if not entries:
                raise ValueError(f'{name}: split file {self.ann_file} is empty')
            refuse_duplicates(entries, self.ann_file)
            return [stem for _, stem in entries]
        folder = self.label_folder()
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'{name}: label folder {folder!r} not found (data_root '
                f'{self.data_root!r}, data_prefix {self.data_prefix})')
        stems = list_folder_stems(folder, '.png', name)
        if not stems:
            raise ValueError(f'{name}: no .png label files in {folder}')
        return stems

    def load_data_list(self) -> List[dict]:
        name = type(self).__name__
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{name}: data_root {self.data_root!r} is not a directory; set '
                'data_root in the dataset config to where the dataset lies')
        classes = check_classes(self.metainfo.get('classes', ()), name)
        data_list = []
        resolve = CaseResolver()
        for stem in self.list_stems():
            files = resolve.files(self.sample_files(stem))
            for key, path in files.items():
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{name}: sample {stem!r} (from '
                        f'{self.ann_file or self.label_folder()}): its {key} {path} '
                        'does not exist')
            data_list.append(
                dict(
                    files,
                    img_id=stem,
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[],
                    num_classes=len(classes),
                    ignore_index=self.ignore_index))
        return data_list


@DATASETS.register_module()
class MFNetDataset(RGBTSegDataset):
    """MFNet (Ha et al. 2017): one RGBA PNG per sample, thermal in channel 4::

        MFNet/
          images/00001D.png ...     (RGBA: RGB + thermal)
          labels/00001D.png ...     (uint8 class index, 0 = unlabeled)
          train.txt val.txt test.txt (test_day.txt test_night.txt in some copies)

    Nine classes, ``unlabeled`` included as class 0 as in the MFNet/RTFNet
    evaluation; 255 is the ignore index.
    """

    METAINFO = dict(
        classes=('unlabeled', 'car', 'person', 'bike', 'curve', 'car_stop', 'guardrail',
                 'color_cone', 'bump'),
        palette=[[0, 0, 0], [64, 0, 128], [64, 64, 0], [0, 128, 192], [0, 0, 192],
                 [128, 128, 0], [64, 64, 128], [192, 128, 128], [192, 64, 0]])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(img='images', seg='labels'),
                 **kwargs):
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

    def sample_files(self, stem: str) -> Dict[str, str]:
        return dict(
            stacked_path=osp.join(
                self.data_prefix.get('img', ''), stem + self.img_suffix),
            seg_map_path=osp.join(self.label_folder(), stem + '.png'))


@DATASETS.register_module()
class PST900Dataset(RGBTSegDataset):
    """PST900 (Shivakumar et al. 2020)::

        PST900_RGBT_Dataset/{train,test}/{rgb,thermal,labels}/NAME.png

    Classes in the order of the labels of the authors' release (0-4). Some public
    configs list them in another order: the order here is the label values'.
    ``data_prefix`` points at one split, e.g. ``dict(img='train/rgb',
    thermal='train/thermal', seg='train/labels')``.
    """

    METAINFO = dict(
        classes=('background', 'fire_extinguisher', 'backpack', 'hand_drill',
                 'survivor'),
        palette=[[0, 0, 0], [0, 0, 255], [0, 255, 0], [255, 0, 0], [255, 255, 255]])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(
                     img='train/rgb', thermal='train/thermal', seg='train/labels'),
                 **kwargs):
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

    def sample_files(self, stem: str) -> Dict[str, str]:
        return dict(
            img_path=osp.join(self.data_prefix.get('img', ''), stem + self.img_suffix),
            thermal_path=osp.join(
                self.data_prefix.get('thermal', ''), stem + self.img_suffix),
            seg_map_path=osp.join(self.label_folder(), stem + '.png'))


@DATASETS.register_module()
class FMBDataset(PST900Dataset):
    """FMB (Liu et al. 2023)::

        FMB/{train,test}/{Visible,Infrared,Label}/NAME.png

    Label 0 is ``unlabeled``; the 14 classes are 1-14. As mmseg does for such data,
    ``reduce_zero_label=True`` (the default here) maps 0 to the ignore index and
    the classes to 0-13, so mIoU is over the 14 classes.
    """

    METAINFO = dict(
        classes=('Road', 'Sidewalk', 'Building', 'Traffic Lamp', 'Traffic Sign',
                 'Vegetation', 'Sky', 'Person', 'Car', 'Truck', 'Bus', 'Motorcycle',
                 'Bicycle', 'Pole'),
        palette=[[128, 64, 128], [244, 35, 232], [70, 70, 70], [250, 170, 30],
                 [220, 220, 0], [107, 142, 35], [70, 130, 180], [220, 20, 60],
                 [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 0, 230], [119, 11, 32],
                 [153, 153, 153]])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(
                     img='train/Visible', thermal='train/Infrared', seg='train/Label'),
                 reduce_zero_label: bool = True,
                 **kwargs):
        super().__init__(
            *args,
            data_prefix=data_prefix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

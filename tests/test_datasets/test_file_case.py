"""File suffixes match whatever their case: ``010002.JPG`` is a ``.jpg`` sample,
listed, paired and loaded under the name it has on disk."""
import os
import os.path as osp

import pytest

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (KAISTDataset, LLVIPDataset, M3FDDataset, MFNetDataset,
                              PST900Dataset)
from tests.helpers.layouts import write_m3fd, write_mfnet, write_pst900
from tests.test_datasets._tiny_layouts import (copy_kaist, llvip_prefix, write_llvip,
                                               write_text)


def rename(folder, old, new):
    os.rename(osp.join(folder, old), osp.join(folder, new))


def infos(ds):
    return {ds.get_data_info(i)['img_id']: ds.get_data_info(i) for i in range(len(ds))}


def test_llvip_folder_lists_upper_case_suffixes_with_their_real_names(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    rename(osp.join(root, 'visible/train'), '010002.jpg', '010002.JPG')
    rename(osp.join(root, 'infrared/train'), '010003.jpg', '010003.JPG')  # partner only
    ds = LLVIPDataset(data_root=root, data_prefix=llvip_prefix(), pipeline=[])
    by_id = infos(ds)
    assert sorted(by_id) == ['010001', '010002', '010003', '010004']
    assert by_id['010002']['img_path'].endswith('visible/train/010002.JPG')
    assert by_id['010002']['thermal_path'].endswith('infrared/train/010002.jpg')
    assert by_id['010003']['img_path'].endswith('visible/train/010003.jpg')
    assert by_id['010003']['thermal_path'].endswith('infrared/train/010003.JPG')
    assert all(
        osp.isfile(i['img_path']) and osp.isfile(i['thermal_path'])
        for i in by_id.values())


def test_split_file_entry_resolves_to_the_upper_case_file(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    rename(osp.join(root, 'visible/train'), '010002.jpg', '010002.JPG')
    rename(osp.join(root, 'Annotations'), '010002.xml', '010002.XML')
    write_text(osp.join(root, 'split.txt'), '010001\n010002.JPG\n')
    ds = LLVIPDataset(
        data_root=root, data_prefix=llvip_prefix(), ann_file='split.txt', pipeline=[])
    by_id = infos(ds)
    assert sorted(by_id) == ['010001', '010002']
    assert by_id['010002']['img_path'].endswith('010002.JPG')
    assert by_id['010002']['instances']  # its annotation was found


def test_one_sample_twice_in_two_cases_is_an_error_naming_both(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    folder = osp.join(root, 'visible/train')
    with open(osp.join(folder, '010002.jpg'), 'rb') as f:
        data = f.read()
    with open(osp.join(folder, '010002.JPG'), 'wb') as f:
        f.write(data)
    with pytest.raises(ValueError, match=r'010002\.JPG and 010002\.jpg'):
        LLVIPDataset(data_root=root, data_prefix=llvip_prefix(), pipeline=[])


def test_m3fd_lists_upper_case_annotations_and_images(tmp_path):
    root = write_m3fd(str(tmp_path))
    rename(osp.join(root, 'Annotation'), '00001.xml', '00001.XML')
    rename(osp.join(root, 'Vis'), '00001.png', '00001.PNG')
    rename(osp.join(root, 'Ir'), '00001.png', '00001.Png')
    by_id = infos(M3FDDataset(data_root=root, pipeline=[]))
    assert len(by_id) == 6
    assert by_id['00001']['img_path'].endswith('Vis/00001.PNG')
    assert by_id['00001']['thermal_path'].endswith('Ir/00001.Png')


def test_segmentation_folders_list_upper_case_png(tmp_path):
    mfnet = write_mfnet(str(tmp_path / 'mfnet'))
    rename(osp.join(mfnet, 'labels'), '00001N.png', '00001N.PNG')
    rename(osp.join(mfnet, 'images'), '00001N.png', '00001N.PNG')
    by_id = infos(MFNetDataset(data_root=mfnet, pipeline=[]))
    assert sorted(by_id) == ['00000D', '00001N', '00002D', '00003N']
    assert by_id['00001N']['stacked_path'].endswith('images/00001N.PNG')
    assert by_id['00001N']['seg_map_path'].endswith('labels/00001N.PNG')
    pst = write_pst900(str(tmp_path / 'pst'))
    rename(osp.join(pst, 'train/thermal'), '00000.png', '00000.PNG')
    info = infos(PST900Dataset(data_root=pst, pipeline=[]))['00000']
    assert info['thermal_path'].endswith('train/thermal/00000.PNG')


def test_kaist_frames_with_upper_case_suffixes(tmp_path):
    root = copy_kaist(tmp_path / 'kaist')
    rename(osp.join(root, 'images/set06/V000/lwir'), 'I00019.jpg', 'I00019.JPG')
    ds = KAISTDataset(
        data_root=root, ann_file='imageSets/test-mini.txt', pipeline=[], test_mode=True)
    info = infos(ds)['set06/V000/I00019']
    assert info['thermal_path'].endswith('set06/V000/lwir/I00019.JPG')

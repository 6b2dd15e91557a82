"""Auto-resume (``--resume`` without a path) with an empty or stale
``work_dir/last_checkpoint``: a clear error naming the pointer and the newest
readable checkpoint, before the runner is built."""
import os
import sys
import time

import pytest
import torch

from tests.helpers.configs import tiny_config
from tests.helpers.scripts import load_script

SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'


def save(path, mtime):
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {}}, str(path))
    os.utime(str(path), (mtime, mtime))
    return str(path)


def cut_off(path, mtime):
    """A checkpoint whose saving was interrupted: the start of a zip archive."""
    full = save(path, mtime)
    data = open(full, 'rb').read()
    open(full, 'wb').write(data[:len(data) // 2])
    os.utime(full, (mtime, mtime))
    return full


def checkpoints(work):
    """iter_2 (readable), epoch_1 (readable, older), iter_4 (newest, cut off),
    iter_6.pth (newest, empty)."""
    now = time.time()
    save(work / 'epoch_1.pth', now - 300)
    readable = save(work / 'iter_2.pth', now - 200)
    cut_off(work / 'iter_4.pth', now - 100)
    open(work / 'iter_6.pth', 'wb').close()
    return readable


def test_empty_pointer_names_itself_and_the_newest_readable_checkpoint(tmp_path):
    from mwam_mm.compat.resume import check_last_checkpoint
    readable = checkpoints(tmp_path)
    (tmp_path / 'last_checkpoint').write_text('\n')
    with pytest.raises(FileNotFoundError) as info:
        check_last_checkpoint(str(tmp_path))
    message = str(info.value)
    assert f'{tmp_path / "last_checkpoint"} is empty' in message
    assert f'newest readable checkpoint in {tmp_path} is {readable}' in message
    assert f'--resume {readable}' in message
    assert 'iter_4' not in message and 'iter_6' not in message


def test_pointer_to_a_missing_file_without_checkpoints_says_there_is_none(tmp_path):
    from mwam_mm.compat.resume import check_last_checkpoint
    gone = str(tmp_path / 'iter_8.pth')
    (tmp_path / 'last_checkpoint').write_text(gone)
    open(tmp_path / 'iter_3.pth', 'wb').close()  # empty: not a candidate
    with pytest.raises(FileNotFoundError) as info:
        check_last_checkpoint(str(tmp_path))
    message = str(info.value)
    assert f'{tmp_path / "last_checkpoint"} names {gone}, which does not exist' in \
        message
    assert f'{tmp_path} holds no readable epoch_*.pth or iter_*.pth' in message


def test_pointer_to_a_cut_off_file_suggests_another(tmp_path):
    from mwam_mm.compat.resume import check_last_checkpoint
    readable = checkpoints(tmp_path)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    with pytest.raises(FileNotFoundError, match='not a readable checkpoint') as info:
        check_last_checkpoint(str(tmp_path))
    assert f'--resume {readable}' in str(info.value)


def test_good_or_absent_pointer_passes(tmp_path):
    from mwam_mm.compat.resume import check_last_checkpoint
    assert check_last_checkpoint(str(tmp_path)) is None  # mmengine starts afresh
    readable = checkpoints(tmp_path)
    (tmp_path / 'last_checkpoint').write_text(readable + '\n')
    assert check_last_checkpoint(str(tmp_path)) == readable


def test_train_resume_with_an_empty_pointer_fails_before_the_runner(
        synthetic_root, tmp_path, monkeypatch):
    work = tmp_path / 'work'
    work.mkdir()
    readable = checkpoints(work)
    (work / 'last_checkpoint').write_text('')
    config = str(tmp_path / 'tiny.py')
    tiny_config(SYNTHETIC, synthetic_root, str(work)).dump(config)

    tool = load_script('tools/train.py', '_resume')

    def no_runner(cfg):
        raise AssertionError('the runner was built before the pointer was checked')

    monkeypatch.setattr(tool, 'build_runner', no_runner)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv',
                        ['train.py', config, '--work-dir',
                         str(work), '--resume'])
    with pytest.raises(FileNotFoundError) as info:
        tool.main()
    message = str(info.value)
    assert str(work / 'last_checkpoint') in message and 'is empty' in message
    assert f'--resume {readable}' in message

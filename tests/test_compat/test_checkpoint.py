"""The checkpoint shim: mmengine's save -> load_from -> resume under torch >= 2.6."""
import os
import pickle

import pytest
import torch

import mwam_mm  # noqa: F401
from mwam_mm.compat import load_local_checkpoint
from mwam_mm.compat.checkpoint import mmengine_local_loader
from tests.helpers.runners import params_of, same_params, toy_runner


def test_mmengine_uses_the_safe_loader():
    assert mmengine_local_loader() is load_local_checkpoint


def test_save_load_from_and_resume(tmp_path):
    runner = toy_runner(tmp_path / 'a', epochs=2, name='a')
    runner.train()
    ckpt = tmp_path / 'a' / 'epoch_2.pth'
    assert ckpt.exists()
    # the file holds mmengine's non-tensor objects: plain weights_only fails...
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)
    # ...the shim loads it, still with weights_only=True
    assert 'message_hub' in load_local_checkpoint(str(ckpt))

    loaded = toy_runner(tmp_path / 'b', epochs=0, load_from=str(ckpt), name='b')
    loaded.load_or_resume()
    assert same_params(params_of(loaded), params_of(runner))

    resumed = toy_runner(
        tmp_path / 'a',
        epochs=3,
        resume=True,
        name='c',
        load_from=str(tmp_path / 'a' / 'epoch_1.pth'))
    resumed.train()
    assert resumed.epoch == 3
    assert (tmp_path / 'a' / 'epoch_3.pth').exists()


class Evil:

    def __reduce__(self):
        return (os.system, ('touch PWNED_BY_CHECKPOINT', ))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Evil()}, path)
    runner = toy_runner(tmp_path / 'w', epochs=0, load_from=str(path), name='e')
    with pytest.raises(
            pickle.UnpicklingError, match=r'refused to load checkpoint .*evil\.pth'):
        runner.load_or_resume()
    assert not (tmp_path / 'PWNED_BY_CHECKPOINT').exists()


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    import builtins

    from mmengine.logging import HistoryBuffer

    class GetattrExploit:  # reaches past the allowlisted class

        def __reduce__(self):
            return (builtins.getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': GetattrExploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match='refused'):
        load_local_checkpoint(str(path))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_local_checkpoint(str(tmp_path / 'nope.pth'))


def test_empty_checkpoint_names_the_file(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    path.write_bytes(b'')
    with pytest.raises(
            RuntimeError,
            match=r'cannot load checkpoint .*epoch_3\.pth:'
            r' the file is empty \(0 bytes\)'):
        load_local_checkpoint(str(path))
    # as mmengine's runner meets it (load_from)
    runner = toy_runner(tmp_path / 'w', epochs=0, load_from=str(path), name='z')
    with pytest.raises(RuntimeError, match=r'epoch_3\.pth: the file is empty'):
        runner.load_or_resume()


@pytest.mark.parametrize('zip_format', [True, False])
def test_truncated_checkpoint_names_the_file(tmp_path, zip_format):
    full = tmp_path / 'full.pth'
    torch.save({
        'state_dict': {
            'w': torch.zeros(2000)
        },
        'meta': {}
    },
               full,
               _use_new_zipfile_serialization=zip_format)
    cut = tmp_path / 'cut.pth'
    data = full.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(
            RuntimeError,
            match=rf'cannot load checkpoint .*cut\.pth '
            rf'\({len(data) // 2} bytes\): the file is truncated or is '
            'not a PyTorch checkpoint'):
        load_local_checkpoint(str(cut))
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(
            RuntimeError,
            match=r'notes\.pth \(16 bytes\): the file is '
            'truncated or is not a PyTorch checkpoint'):
        load_local_checkpoint(str(text))

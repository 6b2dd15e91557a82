import pytest

from mwam_mm.compat import versions


def test_the_installed_stack_is_supported():
    assert versions.find_version_problems() == []


def test_wrong_and_missing_versions_give_one_message_with_the_fix(monkeypatch):
    installed = dict(
        torch='2.13.0+cpu',
        mmengine='0.10.7',
        mmcv='2.2.0',
        mmdet=None,
        mmsegmentation='0.30.0')
    monkeypatch.setattr(versions, '_installed', installed.get)
    problems = versions.find_version_problems()
    assert problems == [
        'mmcv 2.2.0 is installed, mwam_mm needs mmcv>=2.0.0rc4,<2.2.0',
        'mmdet is not installed (need mmdet>=3.1.0,<3.4.0)',
        'mmsegmentation 0.30.0 is installed, mwam_mm needs '
        'mmsegmentation>=1.1.0,<1.3.0',
    ]
    with pytest.raises(ImportError) as error:
        versions.check_versions()
    message = str(error.value)
    assert message.count('\n  - ') == 3
    assert 'bash tools/setup_env.sh' in message


def test_mmcv_without_compiled_ops_is_reported(monkeypatch):
    monkeypatch.setattr(versions.importlib.util, 'find_spec', lambda name: None)
    assert any('without its compiled ops' in p
               for p in versions.find_version_problems())

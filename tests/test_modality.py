import pytest
import torch

from mwam_mm import DEFAULT_MODALITIES, ModalityLayout


def test_default_layout():
    layout = ModalityLayout.build(None)
    assert layout.names == ['rgb', 'thermal']
    assert layout.num_channels == 4
    assert layout.channel_slice('thermal') == slice(3, 4)
    assert layout['rgb'].path_key == 'img_path'
    assert layout['thermal'].path_key == 'thermal_path'
    assert ModalityLayout.build(list(DEFAULT_MODALITIES)) == layout
    assert layout.non_empty_subsets() == [('rgb', 'thermal'), ('rgb', ), ('thermal', )]


def test_known_names_keep_their_defaults():
    layout = ModalityLayout.build(
        [dict(name='rgb', channels=3),
         dict(name='thermal', channels=3)])
    assert layout['thermal'].path_key == 'thermal_path'
    assert layout['thermal'].mean == (128.0, 128.0, 128.0)
    assert layout['rgb'].bgr_to_rgb
    custom = ModalityLayout.build(
        [dict(name='rgb', channels=1),
         dict(name='depth', channels=1)])
    assert custom['rgb'].bgr_to_rgb is False
    assert custom['depth'].path_key == 'depth_path'
    assert custom['depth'].mean == (0.0, )


def test_split():
    layout = ModalityLayout.build(None)
    parts = layout.split(torch.arange(8.).view(1, 4, 1, 2))
    assert parts['rgb'].shape == (1, 3, 1, 2) and parts['thermal'][0, 0, 0, 0] == 6
    with pytest.raises(ValueError, match='expected 4 stacked channels'):
        layout.split(torch.zeros(1, 5, 2, 2))


@pytest.mark.parametrize('spec,message', [
    ([dict(name='rgb', channels=3)], 'at least two'),
    ([dict(name='a', channels=2),
      dict(name='b', channels=1)], 'channels must be'),
    ([dict(name='a', channels=1),
      dict(name='a', channels=1)], 'unique'),
    ([dict(name='a', channels=1, mean=(1, 2)),
      dict(name='b', channels=1)], 'mean needs 1 values'),
    ([dict(name='a', channels=1, std=(0, )),
      dict(name='b', channels=1)], 'std must be positive'),
    ([dict(name='a', channels=1, colour=1),
      dict(name='b', channels=1)], r"unknown key\(s\) \['colour'\]"),
    ([dict(name='a', channels=1, bgr_to_rgb=True),
      dict(name='b', channels=1)], 'bgr_to_rgb needs 3'),
])
def test_bad_layouts(spec, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ModalityLayout.build(spec)

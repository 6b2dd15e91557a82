"""Exported models shared by the deploy tests: each export takes 20-60 s on two
cores, so each graph is exported once per session."""
import glob
import os.path as osp

import pytest

from tests.conftest import DATA
from tests.helpers.scripts import load_script
from tests.test_apis.test_inference import trained_detector, trained_segmentor

LLVIP_PAIR = (osp.join(DATA, 'llvip_mini', 'visible', 'test', '190001.jpg'),
              osp.join(DATA, 'llvip_mini', 'infrared', 'test', '190001.jpg'))
_EXPORTED = {}


def load_tool(script):
    """A script of tools/ as a module (its ``main(argv)`` runs in-process)."""
    return load_script(script, '_deploy')


def synthetic_test_pairs(root):
    rgb = sorted(glob.glob(osp.join(root, 'visible', 'test', '*.jpg')))
    return [(path, path.replace('/visible/', '/infrared/')) for path in rgb]


def spread_scores(checkpoint: str, out: str, factor: float = 30.0) -> str:
    """``checkpoint`` with the classifier's weights scaled by ``factor``.

    After 2 iterations every anchor scores about 0.0100x (the prior), ranks
    apart by 1e-7, less than float noise between two runtimes; scaled, the
    scores spread over (0, 1) and a comparison of rankings means something.
    """
    import torch

    from mwam_mm.compat.checkpoint import load_local_checkpoint
    state = load_local_checkpoint(checkpoint, map_location='cpu')
    state['state_dict']['bbox_head.retina_cls.weight'] *= factor
    torch.save(state, out)
    return out


@pytest.fixture(scope='session')
def exported_detector(tmp_path_factory, synthetic_root):
    """The demo's slim RetinaNet (trained 2 iterations, scores spread), exported
    by tools/deploy/export_onnx.py with a dynamic batch and the presence input."""
    if 'det' not in _EXPORTED:
        trained = trained_detector(tmp_path_factory, synthetic_root)
        work = tmp_path_factory.mktemp('onnx_det')
        checkpoint = spread_scores(trained['checkpoint'], str(work / 'spread.pth'))
        out = str(work / 'retinanet.onnx')
        load_tool('tools/deploy/export_onnx.py').main(
            [trained['config'], checkpoint, '--out', out, '--dynamic-batch'])
        _EXPORTED['det'] = dict(trained, checkpoint=checkpoint, onnx=out)
    return _EXPORTED['det']


def segmentation_shape(model, rgb, thermal):
    """The network input size of this pair under the model's pipeline."""
    from mwam_mm.apis import inference_rgbt
    from mwam_mm.deploy.export import preprocessed_shape
    sample = inference_rgbt(model, rgb, thermal)
    return preprocessed_shape(model, *sample.metainfo['img_shape'][:2])


@pytest.fixture(scope='session')
def exported_segmentor(tmp_path_factory):
    """DeepLabV3+ on PST900-layout data (trained 1 iteration), exported with the
    logits, for the pairs' size (80x96 images resized to 96x115)."""
    if 'seg' not in _EXPORTED:
        from mwam_mm.apis import init_rgbt_model
        from mwam_mm.deploy import export_onnx
        trained = trained_segmentor(tmp_path_factory)
        model = init_rgbt_model(trained['config'], trained['checkpoint'])
        pairs = [(r['img_path'], r['img_path'].replace('/rgb/', '/thermal/'))
                 for r in trained['results']]
        shape = segmentation_shape(model, *pairs[0])
        out = str(tmp_path_factory.mktemp('onnx_seg') / 'deeplabv3plus.onnx')
        meta = export_onnx(model, out, shape=shape, with_logits=True)
        _EXPORTED['seg'] = dict(trained, onnx=out, pairs=pairs, meta=meta, model=model)
    return _EXPORTED['seg']

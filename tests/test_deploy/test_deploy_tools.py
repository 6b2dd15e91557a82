"""tools/infer.py with --backend onnxruntime, as a user runs it on the real
LLVIP pair: the same files and the same predictions as the PyTorch backend."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from tests.test_deploy.conftest import LLVIP_PAIR, load_tool


@pytest.mark.parametrize('missing', [[], ['thermal']])
def test_infer_with_onnxruntime_writes_what_pytorch_writes(exported_detector, tmp_path,
                                                           missing):
    infer = load_tool('tools/infer.py')
    outputs = {}
    for backend, weights in (('pytorch', exported_detector['checkpoint']),
                             ('onnxruntime', exported_detector['onnx'])):
        out = str(tmp_path / backend)
        args = [
            exported_detector['config'], weights, '--rgb', LLVIP_PAIR[0], '--thermal',
            LLVIP_PAIR[1], '--out-dir', out, '--save-pred', '--score-thr', '0',
            '--backend', backend
        ]
        infer.main(args + (['--missing'] + missing if missing else []))
        with open(osp.join(out, 'preds', '190001.json')) as f:
            outputs[backend] = json.load(f)
        drawn = cv2.imread(osp.join(out, 'vis', '190001.png'))
        assert drawn.shape == (1024, 2560, 3)  # RGB and thermal side by side
        outputs[backend]['drawn'] = drawn
    want, got = outputs['pytorch'], outputs['onnxruntime']
    assert got['missing'] == want['missing'] == missing
    assert got['labels'] == want['labels']
    assert len(want['scores']) > 0  # all drawn (--score-thr 0)
    np.testing.assert_allclose(got['bboxes'], want['bboxes'], rtol=1e-3, atol=0.011)
    np.testing.assert_allclose(got['scores'], want['scores'], atol=1e-4)
    # the same boxes drawn: the pictures differ in a few anti-aliased pixels at most
    differ = np.abs(got['drawn'].astype(int) - want['drawn']).max(axis=-1) > 0
    assert differ.mean() < 1e-3

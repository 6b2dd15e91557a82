"""ONNX Runtime behind the RGB-T inference API.

:class:`ONNXRuntimeRGBTModel` has what :func:`mwam_mm.apis.inference_rgbt` and
``tools/infer.py`` use of a model (``cfg``, ``layout``, ``dataset_meta``,
``test_step``), so the same pipeline, the same ``missing`` scenario (the camera
blanked and marked) and the same visualiser work with an exported graph::

    model = init_rgbt_model('configs/...py', 'model.onnx', backend='onnxruntime')
    sample = inference_rgbt(model, 'visible/1.jpg', None, missing='thermal')

The config's data preprocessor (no weights) prepares the batch as in PyTorch;
the graph does the rest; detections come back in original pixels, class maps
are cropped and resized as mmseg's ``postprocess_result`` does.
"""
import json
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData, PixelData

from ..apis.inference import _config_metainfo, task_scope
from ..modality import ModalityLayout
from ..presence import presence_from_data_samples
from .export import META_FORMAT, META_VERSION, _plain, meta_path, normalisation

REQUIRED_KEYS = ('task', 'input_size', 'modalities', 'inputs', 'outputs',
                 'preprocessing', 'postprocessing', 'config')

ONNX_DTYPES = {
    'tensor(float)': np.float32,
    'tensor(int64)': np.int64,
    'tensor(bool)': np.bool_,
}


def load_meta(onnx_file: str) -> dict:
    """The JSON written next to ``onnx_file`` by the export, checked."""
    path = meta_path(onnx_file)
    if not osp.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX model {onnx_file} not found')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: an ONNX model of mwam_mm comes with the JSON that '
            'tools/deploy/export_onnx.py writes next to it (preprocessing, inputs, '
            'the config)')
    with open(path, encoding='utf-8') as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f'{path}: not valid JSON ({error})') from None
    if not isinstance(meta, dict) or meta.get('format') != META_FORMAT:
        raise ValueError(f'{path}: not a description written by the mwam_mm export '
                         f"(its 'format' is not {META_FORMAT!r})")
    if meta.get('version') != META_VERSION:
        raise ValueError(f'{path}: version {meta.get("version")!r} of the description; '
                         f'this mwam_mm reads version {META_VERSION}: export again')
    lacking = [key for key in REQUIRED_KEYS if key not in meta]
    if lacking:
        raise ValueError(f'{path}: the description lacks {lacking}; export again')
    return meta


class ONNXRuntimeRGBTModel:
    """An exported RGB-T detector or segmentor run by ONNX Runtime.

    Args:
        onnx_file (str): The ``.onnx`` file (its ``.json`` next to it).
        config (str | Config, optional): The config for the pipeline and the
            data preprocessor; default: the one saved in the JSON. Its modality
            layout must be the graph's.
        cfg_options (dict, optional): Overrides of the config.
        threads (int, optional): ONNX Runtime's intra-op threads (default: its
            own choice).
    """

    def __init__(self,
                 onnx_file: str,
                 config=None,
                 cfg_options: Optional[dict] = None,
                 threads: Optional[int] = None):
        import onnxruntime as ort
        self.onnx_file = str(onnx_file)
        self.meta = load_meta(self.onnx_file)
        if config is None:
            cfg = Config.fromstring(self.meta['config'], file_format='.py')
        elif isinstance(config, Config):
            cfg = config
        else:
            cfg = Config.fromfile(str(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        self.layout = ModalityLayout.build(self.meta['modalities'])
        self._ignored = list(self.meta.get('ignored_modalities') or [])
        scope = task_scope(cfg)
        with DefaultScope.overwrite_default_scope(scope):
            self.data_preprocessor = MODELS.build(cfg.model.data_preprocessor)
        own = getattr(self.data_preprocessor, 'layout', None)
        if own is not None and own != self.layout:
            raise ValueError(f'the config\'s modality layout {own!r} is not the one '
                             f'{self.onnx_file} was exported with ({self.layout!r})')
        self._check_config(cfg)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(
            self.onnx_file, options, providers=['CPUExecutionProvider'])
        self.inputs = {
            i.name: (list(i.shape), i.type)
            for i in self.session.get_inputs()
        }
        self.output_names = [o.name for o in self.session.get_outputs()]
        meta_classes = self.meta.get('classes') or []
        palette = self.meta.get('palette')
        # JSON made the colours lists; mmengine's visualiser takes tuples
        self.dataset_meta = dict(
            classes=meta_classes,
            palette=[tuple(c) for c in palette] if palette else None)
        if not meta_classes:
            self.dataset_meta = _config_metainfo(cfg, scope)
        if not self.dataset_meta.get('classes') and self.meta['task'] == 'segmentation':
            classes = int(cfg.model.decode_head.num_classes)
            self.dataset_meta['classes'] = [str(i) for i in range(classes)]
        self.task = self.meta['task']
        self.training = False
        if 'presence' not in self.inputs and \
                getattr(self.data_preprocessor, 'dead_camera', None) is not None:
            # a graph without the presence input cannot be told; a constant
            # frame then goes in as it is (the blank scenario)
            self.data_preprocessor.dead_camera = None

    def _check_config(self, cfg) -> None:
        """The config's normalisation and test settings must be the graph's:
        those are fixed at export."""
        pre = self.meta['preprocessing']
        given = normalisation(self.data_preprocessor, self.layout)
        for key, value in given.items():
            if key in pre and list(pre[key]) != value:
                raise ValueError(f'the config\'s data preprocessor has {key} {value}, '
                                 f'{self.onnx_file} was exported with {pre[key]}')
        if 'test_cfg' in self.meta:
            test_cfg = _plain(cfg.model.get('test_cfg') or {})
            if json.loads(json.dumps(test_cfg)) != self.meta['test_cfg']:
                raise ValueError(
                    f'the config\'s model.test_cfg {test_cfg} is not the one '
                    f'{self.onnx_file} was exported with ({self.meta["test_cfg"]}): '
                    'the graph\'s post-processing is fixed at export; export again')

    # the parts of an nn.Module the inference API and tools touch
    def eval(self):
        return self

    def to(self, device):
        if str(device) != 'cpu':
            raise ValueError(f'the onnxruntime backend runs on the CPU here, not '
                             f'{device}')
        return self

    @property
    def batch_size(self) -> Optional[int]:
        """The graph's batch size, or None when it is dynamic."""
        first = self.inputs['image'][0][0]
        return first if isinstance(first, int) else None

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The graph on ``feeds`` (``{input name: array}``), checked against its
        declared inputs first; ``{output name: array}``."""
        given, wanted = set(feeds), set(self.inputs)
        if given != wanted:
            raise ValueError(f'{self.onnx_file} takes the inputs {sorted(wanted)}, '
                             f'got {sorted(given)}')
        for name, (shape, kind) in self.inputs.items():
            value = np.asarray(feeds[name])
            dtype = ONNX_DTYPES.get(kind)
            fits = value.ndim == len(shape) and all(
                not isinstance(want, int) or want == have
                for want, have in zip(shape, value.shape))
            if not fits or (dtype is not None and value.dtype != dtype):
                expected = 'x'.join(
                    str(v) if isinstance(v, int) else 'N' for v in shape)
                raise ValueError(f'{self.onnx_file}: input {name!r} must be {expected} '
                                 f'{np.dtype(dtype).name if dtype else kind}, got '
                                 f'{"x".join(map(str, value.shape)) or "a scalar"} '
                                 f'{value.dtype}' + self._size_hint(name, value))
            feeds[name] = value
        self._check_values(feeds)
        return dict(zip(self.output_names, self.session.run(None, feeds)))

    def _check_values(self, feeds: Dict[str, np.ndarray]) -> None:
        """What PyTorch would refuse (or turn into nonsense) in the values."""
        if 'presence' in feeds:
            used = np.array([m.name not in self._ignored for m in self.layout])
            empty = np.nonzero(~(feeds['presence'] & used).any(axis=1))[0]
            if len(empty):
                raise ValueError(
                    f'{self.onnx_file}: input \'presence\' marks every camera the '
                    f'model uses missing in sample(s) {empty.tolist()} (columns '
                    f'{self.layout.names}); a sample needs one')
        if 'image_shape' in feeds:
            height, width = feeds['image'].shape[-2:]
            shapes = feeds['image_shape']
            bad = np.nonzero((shapes[:, 0] < 1) | (shapes[:, 1] < 1)
                             | (shapes[:, 0] > height) | (shapes[:, 1] > width))[0]
            if len(bad):
                raise ValueError(
                    f'{self.onnx_file}: input \'image_shape\' of sample '
                    f'{int(bad[0])} is {shapes[bad[0]].tolist()}; each must be a '
                    f'(height, width) within the {height}x{width} input')
        if 'scale_factor' in feeds:
            scale = feeds['scale_factor']
            if not (np.isfinite(scale).all() and (scale > 0).all()):
                raise ValueError(f'{self.onnx_file}: input \'scale_factor\' must '
                                 f'be positive, got {scale.tolist()}')

    def _size_hint(self, name: str, value: np.ndarray) -> str:
        if name != 'image' or value.ndim != 4:
            return ''
        height, width = self.meta['input_size']
        return (f'. The graph was exported for {height}x{width} inputs (after the '
                'test pipeline and the data preprocessor); export it again with '
                f'--shape {value.shape[2]} {value.shape[3]} for these images')

    def _feeds(self, inputs: torch.Tensor, samples) -> Dict[str, np.ndarray]:
        feeds = dict(image=inputs.detach().cpu().float().numpy())
        presence = presence_from_data_samples(samples, self.layout)
        if 'presence' in self.inputs:
            if presence is None:
                presence = torch.ones(len(samples), len(self.layout), dtype=torch.bool)
            feeds['presence'] = presence.numpy()
        elif presence is not None:
            missing = [s.metainfo.get('missing_modalities') for s in samples]
            raise ValueError(
                f'{self.onnx_file} was exported without the presence input '
                f'(--no-presence), and samples are marked missing ({missing}); '
                'export with the presence input, or blank the camera without '
                'marking it (the blank scenario)')
        if self.task == 'detection':
            feeds['image_shape'] = np.array(
                [list(s.metainfo['img_shape'])[:2] for s in samples], dtype=np.int64)
            feeds['scale_factor'] = np.array(
                [list(s.metainfo.get('scale_factor', (1.0, 1.0)))[:2] for s in samples],
                dtype=np.float32)
        return feeds

    def test_step(self, data: dict) -> list:
        """The data preprocessor, the graph and the post-processing on a batch
        of the test pipeline (as ``model.test_step``)."""
        data = self.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        step = self.batch_size or len(samples)
        for start in range(0, len(samples), step):
            part = samples[start:start + step]
            outs = self.run(self._feeds(inputs[start:start + step], part))
            if self.task == 'detection':
                self._add_detections(outs, part)
            else:
                self._add_segmentation(outs, part)
        return samples

    @staticmethod
    def _add_detections(outs: dict, samples) -> None:
        for index, sample in enumerate(samples):
            labels = torch.from_numpy(outs['labels'][index])
            found = labels >= 0
            sample.pred_instances = InstanceData(
                bboxes=torch.from_numpy(outs['boxes'][index])[found],
                scores=torch.from_numpy(outs['scores'][index])[found],
                labels=labels[found])

    def _add_segmentation(self, outs: dict, samples) -> None:
        post = self.meta.get('postprocessing') or {}
        align_corners = bool(post.get('align_corners', False))
        threshold = float(
            post['threshold'] if post.get('threshold') is not None else 0.3)
        for index, sample in enumerate(samples):
            meta = sample.metainfo
            left, right, top, bottom = meta.get('img_padding_size',
                                                meta.get('padding_size', [0] * 4))
            ori = tuple(meta['ori_shape'][:2])
            if 'seg_logits' in outs:
                logits = torch.from_numpy(outs['seg_logits'][index:index + 1])
                height, width = logits.shape[-2:]
                logits = logits[..., top:height - bottom, left:width - right]
                logits = _flip(logits, meta)
                logits = F.interpolate(
                    logits, size=ori, mode='bilinear', align_corners=align_corners)[0]
                if logits.shape[0] > 1:
                    pred = logits.argmax(dim=0, keepdim=True)
                else:
                    logits = logits.sigmoid()
                    pred = (logits > threshold).to(logits)
                sample.seg_logits = PixelData(data=logits)
            else:
                seg = torch.from_numpy(outs['seg_map'][index:index + 1])
                height, width = seg.shape[-2:]
                seg = _flip(seg[..., top:height - bottom, left:width - right], meta)
                pred = F.interpolate(
                    seg[:, None].float(), size=ori, mode='nearest')[0].long()
            sample.pred_sem_seg = PixelData(data=pred)


def _flip(tensor: torch.Tensor, meta: dict) -> torch.Tensor:
    if not meta.get('flip'):
        return tensor
    return tensor.flip(
        dims=(-1, ) if meta.get('flip_direction') == 'horizontal' else (-2, ))

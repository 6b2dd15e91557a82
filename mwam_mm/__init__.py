"""mwam_mm: MWAM/FRM modality balancing for RGB-thermal models in OpenMMLab.

``import mwam_mm`` (or ``custom_imports=dict(imports=['mwam_mm'])`` in a config)
checks the installed stack, installs the checkpoint-loading shim and registers every
component in mmengine's root registries, so the same type names resolve under
``default_scope='mmdet'`` and ``default_scope='mmseg'``.
"""
from .compat.versions import check_versions

check_versions()  # before anything imports mmdet (whose own check is a bare assert)

from .compat import install_checkpoint_loader  # noqa: E402

install_checkpoint_loader()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401
from .frm import FrequencyRatioMetric, MWAMWeighting, frequency_ratio_metric  # noqa
from .modality import DEFAULT_MODALITIES, Modality, ModalityLayout  # noqa: E402
from .modality_dropout import ModalityDropoutSampler  # noqa: E402
from .presence import MISSING_KEY, WEIGHTS_KEY, presence_from_data_samples  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    '__version__', 'frequency_ratio_metric', 'FrequencyRatioMetric', 'MWAMWeighting',
    'Modality', 'ModalityLayout', 'DEFAULT_MODALITIES', 'ModalityDropoutSampler',
    'MISSING_KEY', 'WEIGHTS_KEY', 'presence_from_data_samples'
]

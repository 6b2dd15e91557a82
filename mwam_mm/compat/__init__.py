"""Small, documented shims for what the released OpenMMLab versions break."""
from .checkpoint import (checkpoint_globals, install_checkpoint_loader,
                         load_local_checkpoint, register_checkpoint_globals)
from .checkpoint_match import (CheckpointMatchHook, CheckpointMismatchError,
                               check_checkpoint_fits)
from .resume import (ResumableEpochBasedTrainLoop, ResumableSampler, ResumeStateHook,
                     SeededIndex, SeededSamplesMixin, seeded_randomness)
from .versions import check_versions, find_version_problems

__all__ = [
    'check_versions', 'find_version_problems', 'install_checkpoint_loader',
    'load_local_checkpoint', 'register_checkpoint_globals', 'checkpoint_globals',
    'CheckpointMatchHook', 'CheckpointMismatchError', 'check_checkpoint_fits',
    'ResumableEpochBasedTrainLoop', 'ResumableSampler', 'ResumeStateHook',
    'SeededIndex', 'SeededSamplesMixin', 'seeded_randomness'
]

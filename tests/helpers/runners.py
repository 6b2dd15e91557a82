"""mmengine Runners around the toy model, for hook and checkpoint tests."""
import itertools

import torch
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from tests.helpers.toy import ToyDataset

_hub_numbers = itertools.count()


def fresh_message_hub(prefix):
    """A MessageHub no other test has written to.

    MessageHub instances live for the whole process, keyed by name; a name
    built from ``id(model)`` comes back once that model is garbage collected,
    and the new test then reads the old test's scalars.
    """
    return MessageHub.get_instance(f'{prefix}-{next(_hub_numbers)}')


def unique_experiment_name(name=None):
    """An experiment name no other Runner of this process has.

    mmengine names a Runner's MessageHub, logger and visualizer after
    ``{experiment_name}_{timestamp}`` (the timestamp alone without a name), to the
    second: two Runners built in the same second would share them, and the second
    would log into the first's work_dir and read its scalars.
    """
    return f'{name or "toy"}-{next(_hub_numbers)}'


def toy_runner(work_dir,
               epochs=2,
               hooks=(),
               optimizer=None,
               accumulate=1,
               resume=False,
               load_from=None,
               seed=0,
               name=None,
               launcher='none',
               length=16,
               clip_grad=None,
               model=None,
               checkpoint=True,
               deterministic=True):
    """A Runner on the toy model (any ``ToyRGBTModel`` arguments in ``model``);
    ``checkpoint=False``: no CheckpointHook."""
    optimizer = optimizer or dict(type='SGD', lr=0.05, momentum=0.9)
    return Runner(
        model=dict(type='ToyRGBTModel', **(model or {})),
        work_dir=str(work_dir),
        experiment_name=unique_experiment_name(name),
        train_dataloader=dict(
            dataset=ToyDataset(length=length),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(
            optimizer=optimizer, accumulative_counts=accumulate, clip_grad=clip_grad),
        custom_hooks=list(hooks),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1) if checkpoint else None,
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=seed, deterministic=deterministic),
        resume=resume,
        load_from=load_from,
        launcher=launcher,
        # DDP without device ids: CPU and gloo (mmengine would pass LOCAL_RANK)
        cfg=dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=False)) if launcher != 'none' else None,
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmengine')


def params_of(runner):
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def hook_of(runner, cls):
    return next(h for h in runner.hooks if isinstance(h, cls))


def same_params(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

"""OGMGEHook on 2 gloo ranks: one process per rank, started by the test.

``python -m tests.helpers.ogm_ge_dist RANK WORLD PORT OUT`` joins the process
group, trains the toy model with OGM-GE twice (GE noise on, then off) inside
mmengine's Runner with DDP, each rank with its own data and its own fixed
modality scores, and saves ``OUT/rank<RANK>.pth``: the final parameters and the
logged ``ogm_k_<m>``, ``ogm_rho`` of each run.
"""
import gc
import os
import os.path as osp
import sys

import torch
import torch.distributed as torch_dist

import mwam_mm  # noqa: F401
from tests.helpers.runners import toy_runner

# per rank {modality: (sum, count)}: pooled, rgb 4/8 and thermal 2/8 (rho 2);
# rank 0 alone would give rho 3, rank 1 alone rho 1
RANK_SCORES = [
    dict(rgb=(3.0, 4), thermal=(1.0, 4)),
    dict(rgb=(1.0, 4), thermal=(1.0, 4))
]
ALPHA = 0.5


def toy_ogm_runner(work_dir,
                   name,
                   hooks,
                   model=None,
                   epochs=1,
                   length=16,
                   accumulate=1,
                   optimizer=None,
                   launcher='none'):
    """:func:`toy_runner` with no checkpoints and OGM-GE's defaults."""
    return toy_runner(
        work_dir,
        epochs=epochs,
        hooks=hooks,
        optimizer=optimizer,
        accumulate=accumulate,
        name=name,
        launcher=launcher,
        length=length,
        model=model,
        checkpoint=False,
        deterministic=False)


def history(runner, key):
    return [float(v) for v in runner.message_hub.get_scalar(key).data[0]]


def main(rank: int, world: int, port: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=port,
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world))
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    saved = {}
    for ge in (True, False):
        runner = toy_ogm_runner(
            out,
            f'ge{int(ge)}',
            [dict(type='OGMGEHook', alpha=ALPHA, ge=ge)],
            model=dict(modality_scores=RANK_SCORES[rank]),
            epochs=1,
            length=24,  # 3 iterations of 4 samples per rank
            launcher='pytorch')
        runner.train()
        model = runner.model.module
        saved[f'ge{int(ge)}'] = dict(
            params={
                k: v.detach().clone()
                for k, v in model.named_parameters()
            },
            k_rgb=history(runner, 'train/ogm_k_rgb'),
            k_thermal=history(runner, 'train/ogm_k_thermal'),
            rho=history(runner, 'train/ogm_rho'),
            indices=[int(i) for i in runner.train_dataloader.sampler])
        # free the runner (in reference cycles) and its DDP reducer, which holds
        # the process group, before the group is destroyed
        del runner, model
        gc.collect()
    torch.save(saved, osp.join(out, f'rank{rank}.pth'))
    torch_dist.barrier()
    torch_dist.destroy_process_group()


if __name__ == '__main__':
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
    # Everything the test reads is saved and the group destroyed: skip the
    # interpreter's and C++'s static teardown, where gloo's threads still
    # aborted 1 run in ~120 here after the cleanup above (pytorch/gloo#155).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

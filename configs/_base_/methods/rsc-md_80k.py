# RSC-MD (rsc-md.py) for the 80k-iteration schedules: a warm-up of 1000 iterations.
method_model = dict(aux_loss_weight=1.0)
custom_hooks = [dict(type='RSCMDHook', beta=0.0, warmup_iters=1000)]

# RSC-MD (Shao & Shi, 2025): RSC, an auxiliary head per modality (detection or
# decode head) on its stream's own features, losses added with weight lambda = 1
# (keys *_rgb, *_thermal); MD (our adaptation of the unpublished detail): after a
# warm-up the fused loss's gradient into the streams is scaled by beta = 0, so each
# stream learns from its own unimodal loss and fusion, neck and head from the fused
# loss. The auxiliary heads are not used at test time. Warm-up: one epoch.
method_model = dict(aux_loss_weight=1.0)
custom_hooks = [dict(type='RSCMDHook', beta=0.0, warmup_epochs=1)]

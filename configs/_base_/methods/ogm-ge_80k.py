# OGM-GE (ogm-ge.py) for the 80k-iteration schedules: modulation during the first
# half of training (40000 of 80000 iterations).
custom_hooks = [dict(type='OGMGEHook', window=(0, 40000), by_epoch=False)]

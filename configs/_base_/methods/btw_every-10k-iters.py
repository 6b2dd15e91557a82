# BTW (btw.py) for the iteration-based schedules: refreshed every 10000 iterations.
custom_hooks = [dict(type='BTWHook', interval=10000, by_epoch=False)]

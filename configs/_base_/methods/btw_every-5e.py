# BTW (btw.py) refreshed every 5 epochs (the 12-epoch detection schedules).
custom_hooks = [dict(type='BTWHook', interval=5)]

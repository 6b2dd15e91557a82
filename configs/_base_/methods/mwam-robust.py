# MWAM with the well-conditioned band-energy FRM (mode='robust') instead of the
# paper's ratio; an analysis variant of the demo (tools/demo.py --variants ...).
custom_hooks = [
    dict(type='MWAMHook', preset='paper', apply='grad', frm=dict(mode='robust'))
]

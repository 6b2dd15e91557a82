# The thermal ceiling: the same detector trained and tested on the thermal camera only
# (the rgb stream is not built; its input is ignored in every scenario). Its
# score is what any 'thermal-only' score of a fused model is read against.
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

model = dict(backbone=dict(ignore_modalities=['rgb']))

# CMPT over frozen unimodal encoders: each stream starts from the checkpoint of its
# unimodal reference, trained first with
#   python tools/train.py configs/detection/<this family>_unimodal-rgb.py
#   python tools/train.py configs/detection/<this family>_unimodal-thermal.py
# (their default work dirs, named below; name others with --cfg-options
# model.backbone.streams.rgb.init_cfg.checkpoint=...).
_base_ = [
    './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py',
    '../_base_/methods/cmpt-frozen.py'
]
model = _base_.pop('method_model')  # see configs/_base_/methods/README.md
model.backbone.streams = dict(
    rgb=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic_'
            'unimodal-rgb/epoch_12.pth',
            prefix='backbone.streams.rgb.')),
    thermal=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic_'
            'unimodal-thermal/epoch_12.pth',
            prefix='backbone.streams.thermal.')))

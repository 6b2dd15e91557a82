# The thermal ceiling: the same model trained and tested on the thermal camera only
# (the rgb stream is not built; its input is ignored in every scenario). Its score
# is what any 'thermal-only' score of a fused model is read against.
method_model = dict(backbone=dict(ignore_modalities=['rgb']))

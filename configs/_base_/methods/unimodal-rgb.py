# The RGB ceiling: the same model trained and tested on the rgb camera only (the
# thermal stream is not built; its input is ignored in every scenario). Its score
# is what any 'rgb-only' score of a fused model is read against.
method_model = dict(backbone=dict(ignore_modalities=['thermal']))

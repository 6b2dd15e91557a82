# Ours, after RSC: the detector's own head trained on each modality's unimodal
# view (the fusion's output with only that modality present, as at test time when
# the other camera is known missing), losses added with weight 1, next to the fused
# loss: every sample trains the full input and each single-camera input at once.
# Test-time model and cost are the plain detector's.
method_model = dict(aux_loss_weight=1.0, aux_heads='shared', aux_input='view')

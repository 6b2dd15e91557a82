# CMPT in its paper's own setting: the streams start from pretrained unimodal
# encoders and stay frozen (parameters and norm statistics); low-rank adapters on
# every level (rank 1, zero-initialised: the model starts as the frozen streams),
# the cross-modal proxies, the fusion and the heads learn, with CMPT's per-sample
# missing patterns. A leaf names the encoders' checkpoints (per stream, a local
# file: nothing is downloaded); the benchmark gives each seed's run the same
# seed's unimodal references.
method_model = dict(
    backbone=dict(
        missing_substitute=dict(type='CrossModalProxy', loss_weight=0.2),
        freeze_streams=True,
        stream_adapter=dict(type='LowRankAdapter', rank=1)),
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

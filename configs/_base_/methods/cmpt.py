# CMPT-style cross-modal proxies (after Reza et al., 2025; our adaptation to dense
# tasks): per backbone level a light module predicts each modality's features from
# the other's, trained with an alignment loss (weight 0.2) on fully present
# samples; a known-missing modality's features are replaced by its gated
# prediction. Training draws per-sample missing patterns (feature-level modality
# dropout over the non-empty subsets).
method_model = dict(
    backbone=dict(missing_substitute=dict(type='CrossModalProxy', loss_weight=0.2)),
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

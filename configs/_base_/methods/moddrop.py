# Modality dropout as the authors' release trains (MMANet's protocol): per sample,
# the kept modalities drawn uniformly over the non-empty subsets, the dropped ones
# replaced at the feature level (the model is told). Applied by the data
# preprocessor, so a config with it differs from its base only by that option.
method_model = dict(
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

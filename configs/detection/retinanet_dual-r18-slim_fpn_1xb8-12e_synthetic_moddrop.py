# Modality dropout as the authors' release trains (MMANet's protocol): per sample,
# the kept modalities drawn uniformly over the non-empty subsets, the dropped ones
# replaced at the feature level (the model is told). Applied by the data
# preprocessor, so this config inherits and differs only by that option.
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

model = dict(
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

# Modality dropout as the authors' release trains: kept subset uniform over the
# non-empty subsets, dropped modalities replaced at the feature level.
_base_ = './retinanet_dual-r18_fpn_1xb8-12e_m3fd.py'

model = dict(
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

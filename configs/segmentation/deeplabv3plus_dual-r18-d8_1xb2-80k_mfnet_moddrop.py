# Modality dropout as the authors' release trains: kept subset uniform over the
# non-empty subsets, dropped modalities replaced at the feature level.
_base_ = './deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py'

model = dict(
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

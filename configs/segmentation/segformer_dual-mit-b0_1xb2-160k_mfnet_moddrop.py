# Modality dropout as the authors' release trains: kept subset uniform over the
# non-empty subsets, dropped modalities replaced at the feature level.
_base_ = './segformer_dual-mit-b0_1xb2-160k_mfnet.py'

model = dict(
    data_preprocessor=dict(modality_dropout=dict(protocol='subsets', level='feature')))

# Input-level modality dropout: in half of the training samples one modality's
# pixels are blanked (black) and the model is not told.
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

model = dict(
    data_preprocessor=dict(
        modality_dropout=dict(protocol='rate', prob=0.5, level='input', fill='zero')))

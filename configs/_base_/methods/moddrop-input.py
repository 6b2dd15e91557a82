# Input-level modality dropout: in half of the training samples one modality's
# pixels are blanked (black) and the model is not told.
method_model = dict(
    data_preprocessor=dict(
        modality_dropout=dict(protocol='rate', prob=0.5, level='input', fill='zero')))

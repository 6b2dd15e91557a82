from .loading import (LoadRGBTImagePair, LoadRGBTImagePairFromNDArray,
                      LoadRGBTSegAnnotations, read_image)
from .modality_transforms import (BlankModality, ModalityDropout, PerModality,
                                  blank_modalities, fill_value)

__all__ = [
    'LoadRGBTImagePair', 'LoadRGBTImagePairFromNDArray', 'LoadRGBTSegAnnotations',
    'read_image', 'BlankModality', 'ModalityDropout', 'PerModality', 'blank_modalities',
    'fill_value'
]

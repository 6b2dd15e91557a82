from .loading import LoadRGBTImagePair, LoadRGBTSegAnnotations, read_image
from .modality_transforms import (BlankModality, ModalityDropout, PerModality,
                                  blank_modalities, fill_value)

__all__ = [
    'LoadRGBTImagePair', 'LoadRGBTSegAnnotations', 'read_image', 'BlankModality',
    'ModalityDropout', 'PerModality', 'blank_modalities', 'fill_value'
]

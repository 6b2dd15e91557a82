from .flir import FLIRAlignedDataset
from .kaist import KAISTDataset, parse_kaist_annotation
from .llvip import LLVIPDataset
from .m3fd import M3FDDataset
from .rgbt_det import RGBTDetDataset, parse_voc_xml
from .rgbt_seg import FMBDataset, MFNetDataset, PST900Dataset, RGBTSegDataset
from .synthetic import make_synthetic_rgbt
from .transforms import *  # noqa: F401,F403

__all__ = [
    'FLIRAlignedDataset', 'KAISTDataset', 'parse_kaist_annotation', 'LLVIPDataset',
    'M3FDDataset', 'RGBTDetDataset', 'parse_voc_xml', 'make_synthetic_rgbt',
    'FMBDataset', 'MFNetDataset', 'PST900Dataset', 'RGBTSegDataset'
]

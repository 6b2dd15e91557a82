"""LLVIP: low-light visible-infrared pedestrian pairs."""
from mmengine.registry import DATASETS

from .rgbt_det import RGBTDetDataset


@DATASETS.register_module()
class LLVIPDataset(RGBTDetDataset):
    """LLVIP in its released layout::

        LLVIP/
          Annotations/010001.xml ...        (both splits in one folder)
          infrared/{train,test}/010001.jpg ...
          visible/{train,test}/010001.jpg ...

    The split is the folder: use ``data_prefix=dict(img='visible/train',
    thermal='infrared/train', ann='Annotations')`` (``test`` for testing). An
    ``ann_file`` with one name per line selects a subset instead.
    """

    METAINFO = dict(classes=('person', ), palette=[(220, 20, 60)])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(
                     img='visible/train', thermal='infrared/train', ann='Annotations'),
                 **kwargs):
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

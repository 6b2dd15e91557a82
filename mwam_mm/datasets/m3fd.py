"""M3FD: multi-scenario multi-modality detection pairs."""
from typing import List

from mmengine.registry import DATASETS

from .rgbt_det import RGBTDetDataset


@DATASETS.register_module()
class M3FDDataset(RGBTDetDataset):
    """M3FD in its released layout::

        M3FD_Detection/
          Annotation/00000.xml ...
          Ir/00000.png ...        (grey stored as 24-bit)
          Vis/00000.png ...

    M3FD has no official split: ``ann_file`` names a split file (one name per
    line); without one every annotated pair is used. Classes are matched by name,
    whatever order a file lists them in. Image sizes vary; each box is checked
    against the size its own XML declares.
    """

    METAINFO = dict(
        classes=('People', 'Car', 'Bus', 'Motorcycle', 'Lamp', 'Truck'),
        palette=[(220, 20, 60), (0, 0, 142), (0, 60, 100), (0, 0, 230), (250, 170, 30),
                 (0, 0, 70)])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(img='Vis', thermal='Ir', ann='Annotation'),
                 img_suffix: str = '.png',
                 thermal_suffix: str = '.png',
                 **kwargs):
        super().__init__(
            *args,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            thermal_suffix=thermal_suffix,
            **kwargs)

    def list_stems(self) -> List[str]:
        if self.ann_file:
            return self._read_split_file(self.ann_file)
        return self._list_folder(self.data_prefix.get('ann', ''), '.xml')

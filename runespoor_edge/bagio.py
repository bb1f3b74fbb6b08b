"""rosbag2 tools on the `rosbags` library (no ROS installation needed): convert data sets and videos to
bags, read bag summaries, and the replay timing logic used by the bag player.

Conversion writes `sensor_msgs/Image` on /camera/image_raw (rgb8 by default) and, where the data set has
labels, the label images **as given by the data set** (mono8) on /camera/labels with the same header
stamps. Label values are not remapped: CamVid ids 0-10 with 11 = void, Cityscapes gtFine *labelIds*
(0-33, not train ids). Which one is recorded in the bag's `custom_data` (`runespoor.labels`), and
`runespoor_common.datasets.label_lut()` gives the 256-entry table to class ids (255 = ignore) for a
consumer that needs them. Keeping the data set's own ids means a bag is a faithful copy of the data set,
and one bag serves any consumer (training ids differ per model). The folder layouts, frame numbering
rates and readers are those of runespoor_common/datasets.py.

Stamps: frames of one sequence are stamped from their frame number at the source frame rate (CamVid:
30 fps original numbering, Cityscapes sequences: 17 fps, video: its fps); sequences follow each other
back to back; the first frame is stamped `start_time` (default 1.0 s, since a zero stamp reads as
"unset" to many ROS tools). Bags are MCAP by default (sqlite3 optional), rosbag2 metadata version 9, and
carry the message definitions of every topic (Foxglove needs them), including the project's own types
registered from their .msg files.
"""
from __future__ import annotations

import importlib
import math
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from tqdm import tqdm

try:  # the ament index exists where ROS is sourced; a pip-mode install has none
    from ament_index_python.packages import get_package_share_directory
except ImportError:
    get_package_share_directory = None

from runespoor_common import datasets, graph
from runespoor_common.datasets import CAMVID, CITYSCAPES, LABEL_FORMATS

IMAGE_TOPIC = graph.absolute(graph.CAMERA_IMAGE)
LABEL_TOPIC = graph.absolute(graph.CAMERA_LABELS)
IMAGE_TYPE = 'sensor_msgs/msg/Image'
FORMATS = (*datasets.DATASETS, 'video')
STORAGES = ('mcap', 'sqlite3')
CUSTOM_PREFIX = 'runespoor.'


class BagError(ValueError):
    """A bag or conversion source that is missing, malformed or inconsistent (the message names it)."""


# ======================================================================================== typestore
def msg_dirs() -> list[Path]:
    """Folders holding the project's .msg files (source checkout first, then the installed share/)."""
    here = Path(__file__).resolve().parent.parent
    dirs = [here / 'runespoor_msgs' / 'msg', Path(sys.prefix) / 'share' / 'runespoor' / 'msg']
    return [d for d in dirs + _ament_share('runespoor', 'msg') if d.is_dir()]


def _ament_share(pkg: str, *parts: str) -> list[Path]:
    """[share/<pkg>/<parts>] from the ament index, or [] where `pkg` is not on an ament prefix path."""
    if get_package_share_directory is None:
        return []
    try:
        return [Path(get_package_share_directory(pkg)).joinpath(*parts)]
    except Exception:  # PackageNotFoundError, or no AMENT_PREFIX_PATH at all
        return []


_TYPESTORE = None


def typestore():
    """Kilted typestore + the project's own message types (runespoor/msg/*), built once."""
    global _TYPESTORE
    if _TYPESTORE is None:
        ts = get_typestore(Stores.ROS2_KILTED)
        dirs = msg_dirs()
        if dirs:
            types = {}
            for f in sorted(dirs[0].glob('*.msg')):
                types.update(get_types_from_msg(f.read_text(), f'runespoor/msg/{f.stem}'))
            ts.register(types)
        _TYPESTORE = ts
    return _TYPESTORE


def ensure_type(msgtype: str) -> bool:
    """Make `msgtype` ('pkg/msg/Name') known to the typestore, from share/<pkg>/msg/<Name>.msg when it is
    not built in. Returns False when no definition can be found."""
    ts = typestore()
    if msgtype in ts.types:
        return True
    pkg, _, name = msgtype.split('/')
    candidates = [Path(sys.prefix) / 'share' / pkg / 'msg' / f'{name}.msg', *_ament_share(pkg, 'msg', f'{name}.msg')]
    for c in candidates:
        if c.is_file():
            types = get_types_from_msg(c.read_text(), msgtype)
            ts.register(types)
            # nested types of other packages
            return all(ensure_type(t) for t in _nested_types(msgtype))
    return False


def _nested_types(msgtype: str) -> list[str]:
    out = []
    for _, (kind, detail) in typestore().fielddefs[msgtype][1]:
        if kind == Nodetype.NAME:
            out.append(detail)
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) and detail[0][0] == Nodetype.NAME:
            out.append(detail[0][1])
    return out


def message_class(msgtype: str):
    """The rclpy message class of a bag's 'pkg/msg/Name' (for the nodes that replay and record bags)."""
    pkg, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{pkg}.{kind}'), name)


def has_header(msgtype: str) -> bool:
    """True when the first field of `msgtype` is a std_msgs/Header (its stamp then starts the CDR body)."""
    fields = typestore().fielddefs.get(msgtype, ([], []))[1]
    return bool(fields) and fields[0][1] == (Nodetype.NAME, 'std_msgs/msg/Header')


def restamp_cdr(data: bytes | memoryview, stamp_ns: int) -> bytes:
    """Serialized message with its header stamp replaced (message types whose first field is a Header).

    CDR layout: 4-byte encapsulation header (byte 1: 0 = big, 1 = little endian), then Header.stamp =
    int32 sec, uint32 nanosec at offsets 4..12. Patching 8 bytes avoids deserializing multi-MB images.
    """
    buf = bytearray(data)
    if len(buf) < 12:
        raise BagError(f'serialized message of {len(buf)} bytes is too short to hold a header stamp')
    endian = '<' if buf[1] & 1 else '>'
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    struct.pack_into(endian + 'iI', buf, 4, sec, nsec)
    return bytes(buf)


def cdr_stamp_ns(data: bytes | memoryview) -> int:
    """Header stamp of a serialized message whose first field is a Header [ns]."""
    endian = '<' if data[1] & 1 else '>'
    sec, nsec = struct.unpack_from(endian + 'iI', data, 4)
    return sec * 1_000_000_000 + nsec


# ======================================================================================== sources
@dataclass
class SourceFrame:
    stamp_ns: int
    name: str
    image_path: Optional[Path] = None
    label_path: Optional[Path] = None
    index: int = 0           # frame index in a video
    sequence: str = ''


@dataclass
class SourcePlan:
    fmt: str
    dataset: str
    frames: list[SourceFrame]
    fps: float               # nominal playback rate of the stamps [frames/s]
    source_fps: float        # rate of the source's frame numbering [frames/s]
    label_format: str        # 'none' or a LABEL_FORMATS value
    split: str = ''
    sequences: tuple[str, ...] = ()
    video: Optional[Path] = None


def _stamps(groups: list[list[tuple[int, object]]], fps: float, start_ns: int) -> list[list[int]]:
    """Stamps for sequences of (frame number, item): number / fps within a sequence, sequences back to
    back (the next starts one median frame step after the previous one ends)."""
    out, t = [], start_ns
    for g in groups:
        nums = [n for n, _ in g]
        base = nums[0]
        st = [t + round((n - base) * 1e9 / fps) for n in nums]
        step = int(np.median(np.diff(st))) if len(st) > 1 else round(1e9 / fps)
        out.append(st)
        t = st[-1] + step
    return out


def _by_sequence(dataset: str, img_dir: Path, layout: str) -> dict[str, list[tuple[int, Path]]]:
    """The images of a split folder by sequence: {sequence: [(frame number, path)]}. A file name off the
    data set's layout stops the conversion (`layout` says what is expected): its stamp would be a guess."""
    groups: dict[str, list[tuple[int, Path]]] = {}
    for p in datasets.image_files(dataset, img_dir):
        fid = datasets.frame_id(dataset, p)
        if fid is None:
            raise BagError(f'{p}: {layout}')
        groups.setdefault(fid.sequence, []).append((fid.number, p))
    return groups


def plan_camvid(root: Path, split: str, sequence: str | None = None, start_ns: int = 1_000_000_000) -> SourcePlan:
    """CamVid (SegNet layout): <root>/<split>/<seq>_<frame>.png + <root>/<split>annot/ (same names)."""
    img_dir = datasets.image_dir('camvid', root, split)
    if not img_dir.is_dir():
        raise BagError(f'CamVid split folder {img_dir} not found (expected train|val|test beside *annot)')
    groups = _by_sequence('camvid', img_dir, 'CamVid file names are <sequence>_<frame number>.png')
    if sequence:
        if sequence not in groups:
            raise BagError(f'sequence {sequence!r} not in {img_dir} (has {", ".join(sorted(groups)) or "none"})')
        groups = {sequence: groups[sequence]}
    if not groups:
        raise BagError(f'no CamVid frames (*.png) in {img_dir}')
    names = sorted(groups)
    ordered = [sorted(groups[s], key=lambda x: x[0]) for s in names]
    stamps = _stamps(ordered, CAMVID.fps, start_ns)
    frames, has_labels = [], datasets.label_dir('camvid', root, split).is_dir()
    for s, g, st in zip(names, ordered, stamps):
        for (n, p), t in zip(g, st):
            lab = datasets.label_file('camvid', root, split, p) if has_labels else None
            if lab is not None and not lab.is_file():
                raise BagError(f'label {lab} missing for frame {p} (the {lab.parent.name} folder is incomplete)')
            frames.append(SourceFrame(t, p.stem, p, lab, sequence=s))
    return SourcePlan('camvid', 'camvid', frames, _playback_fps(frames, CAMVID.fps), CAMVID.fps,
                      LABEL_FORMATS['camvid'] if has_labels else 'none', split, tuple(names))


def plan_cityscapes(root: Path, split: str, sequence: str | None = None,
                    start_ns: int = 1_000_000_000) -> SourcePlan:
    """Cityscapes: <root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png (17 fps
    snippets) when present, else <root>/leftImg8bit/<split>/...; labels from gtFine/<split> when present.
    `sequence`: a city ('frankfurt') or a city and sequence number ('frankfurt_000000')."""
    for snippets in (True, False):
        img_dir = datasets.image_dir('cityscapes', root, split, sequences=snippets)
        if img_dir.is_dir():
            break
    else:
        raise BagError(f'no Cityscapes images under {root}: expected leftImg8bit_sequence/{split}/ or '
                       f'leftImg8bit/{split}/')
    groups = _by_sequence('cityscapes', img_dir, 'expected <city>_<sequence>_<frame>_leftImg8bit.png')
    if sequence:
        groups = {k: v for k, v in groups.items() if k == sequence or k.rsplit('_', 1)[0] == sequence}
        if not groups:
            raise BagError(f'no Cityscapes sequence or city {sequence!r} in {img_dir}')
    if not groups:
        raise BagError(f'no Cityscapes frames (*_leftImg8bit.png) in {img_dir}')
    names = sorted(groups)
    ordered = [sorted(groups[s], key=lambda x: x[0]) for s in names]
    stamps = _stamps(ordered, CITYSCAPES.fps, start_ns)
    frames, n_labels = [], 0
    for s, g, st in zip(names, ordered, stamps):
        for (n, p), t in zip(g, st):
            lab = datasets.label_file('cityscapes', root, split, p)
            lab = lab if lab.is_file() else None
            n_labels += lab is not None
            frames.append(SourceFrame(t, datasets.frame_name('cityscapes', p), p, lab, sequence=s))
    return SourcePlan('cityscapes', 'cityscapes', frames, _playback_fps(frames, CITYSCAPES.fps), CITYSCAPES.fps,
                      LABEL_FORMATS['cityscapes'] if n_labels else 'none', split, tuple(names))


def plan_video(path: Path, fps: float | None = None, start_ns: int = 1_000_000_000) -> SourcePlan:
    cap = cv2.VideoCapture(str(path))
    if not path.is_file() or not cap.isOpened():
        raise BagError(f'cannot open video file {path}')
    src_fps = fps or cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if not (src_fps > 0 and math.isfinite(src_fps)):
        raise BagError(f'{path}: the video reports no frame rate; pass --fps')
    frames = [SourceFrame(start_ns + round(i * 1e9 / src_fps), f'{path.stem}_{i:06d}', index=i,
                          sequence=path.stem) for i in range(count)]
    return SourcePlan('video', 'video', frames, src_fps, src_fps, 'none', '', (path.stem,), video=path)


def _playback_fps(frames: list[SourceFrame], default: float) -> float:
    if len(frames) < 2:
        return default
    d = np.diff([f.stamp_ns for f in frames])
    return float(1e9 / np.median(d))


def make_plan(fmt: str, input: Path, split: str = 'val', sequence: str | None = None, fps: float | None = None,
              start_time: float = 1.0) -> SourcePlan:
    input = Path(input)
    start_ns = round(float(start_time) * 1e9)
    if fmt == 'camvid':
        plan = plan_camvid(input, split, sequence, start_ns)
    elif fmt == 'cityscapes':
        plan = plan_cityscapes(input, split, sequence, start_ns)
    elif fmt == 'video':
        return plan_video(input, fps, start_ns)
    else:
        raise BagError(f'unknown source format {fmt!r}; one of {", ".join(FORMATS)}')
    if fps:  # re-time an image data set at a chosen rate (frame order kept)
        for i, f in enumerate(plan.frames):
            f.stamp_ns = start_ns + round(i * 1e9 / fps)
        plan.fps = float(fps)
    return plan


def iter_frames(plan: SourcePlan) -> Iterator[tuple[SourceFrame, np.ndarray, Optional[np.ndarray]]]:
    if plan.video is not None:
        cap = cv2.VideoCapture(str(plan.video))
        try:
            for f in plan.frames:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield f, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None
        finally:
            cap.release()
        return
    for f in plan.frames:
        rgb = datasets.load_image(f.image_path)
        lab = datasets.read_label_ids(f.label_path) if f.label_path is not None else None
        if lab is not None and lab.shape != rgb.shape[:2]:
            raise BagError(f'label {f.label_path} is {lab.shape[1]}x{lab.shape[0]} but image {f.image_path} '
                           f'is {rgb.shape[1]}x{rgb.shape[0]}')
        yield f, rgb, lab


# ======================================================================================== writing
def image_msg(arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    """A rosbags sensor_msgs/Image (for serialize_cdr) from an (H, W[, C]) uint8 array."""
    ts = typestore()
    Image = ts.types['sensor_msgs/msg/Image']
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    arr = np.ascontiguousarray(arr)
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return Image(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id),
                 height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=0,
                 step=int(arr.strides[0]), data=arr.reshape(-1).view(np.uint8), )


def storage_plugin(storage: str):
    if storage not in STORAGES:
        raise BagError(f'unknown storage {storage!r}; one of {", ".join(STORAGES)}')
    return StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3


def open_writer(out: Path, storage: str = 'mcap'):
    """A rosbags Writer for `out` (must not exist), rosbag2 metadata version 9."""
    return Writer(out, version=9, storage_plugin=storage_plugin(storage))


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise BagError(f'{out} exists already (pass --overwrite to replace it)')
        shutil.rmtree(out)
    # rosbag2 names the data file after the folder: rename it with the folder
    for f in list(tmp.iterdir()):
        if f.name.startswith(tmp.name):
            f.rename(tmp / (out.name + f.name[len(tmp.name):]))
    meta = tmp / 'metadata.yaml'
    if meta.is_file():
        meta.write_text(meta.read_text().replace(tmp.name, out.name))
    tmp.rename(out)


def convert(fmt: str, input: str | os.PathLike, out: str | os.PathLike, split: str = 'val',
            sequence: str | None = None, storage: str = 'mcap', fps: float | None = None,
            start_time: float = 1.0, encoding: str = 'rgb8', frame_id: str = 'camera',
            limit: int | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Convert a data set split / video to a bag at `out`; returns `bag_summary(out)`.

    Written into a temporary folder beside `out` and renamed at the end, so `out` is complete or absent.
    """
    if encoding not in ('rgb8', 'bgr8'):
        raise BagError(f'image encoding must be rgb8 or bgr8, got {encoding!r}')
    out = Path(out)
    if out.exists() and not overwrite:
        raise BagError(f'{out} exists already (pass --overwrite to replace it)')
    plan = make_plan(fmt, Path(input), split, sequence, fps, start_time)
    if limit:
        plan.frames = plan.frames[:int(limit)]
    if not plan.frames:
        raise BagError(f'{input}: nothing to convert (0 frames)')
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.', dir=out.parent))
    tmp.rmdir()  # the writer creates the folder itself
    ts = typestore()
    writer = open_writer(tmp, storage)
    writer.open()
    ok = False
    try:
        img_conn = writer.add_connection(IMAGE_TOPIC, IMAGE_TYPE, typestore=ts)
        lab_conn = None
        n_img = n_lab = 0
        size = None
        bar = tqdm(total=len(plan.frames), desc=f'convert {fmt}', unit='frame', disable=not progress)
        for f, rgb, lab in iter_frames(plan):
            size = size or (rgb.shape[1], rgb.shape[0])
            arr = rgb if encoding == 'rgb8' else rgb[:, :, ::-1]
            writer.write(img_conn, f.stamp_ns, ts.serialize_cdr(image_msg(arr, encoding, f.stamp_ns, frame_id),
                                                                IMAGE_TYPE))
            n_img += 1
            if lab is not None:
                if lab_conn is None:
                    lab_conn = writer.add_connection(LABEL_TOPIC, IMAGE_TYPE, typestore=ts)
                writer.write(lab_conn, f.stamp_ns, ts.serialize_cdr(image_msg(lab, 'mono8', f.stamp_ns, frame_id),
                                                                    IMAGE_TYPE))
                n_lab += 1
            bar.update()
        bar.close()
        if n_img == 0:
            raise BagError(f'{input}: no frame could be read')
        custom = {
            'format': plan.fmt, 'dataset': plan.dataset, 'split': plan.split,
            'sequences': ','.join(plan.sequences), 'source': str(Path(input).resolve()),
            'fps': f'{plan.fps:.6g}', 'source_fps': f'{plan.source_fps:.6g}',
            'width': str(size[0]), 'height': str(size[1]), 'frames': str(n_img), 'label_frames': str(n_lab),
            'labels': plan.label_format if n_lab else 'none', 'encoding': encoding,
        }
        for k, v in custom.items():
            writer.set_custom_data(CUSTOM_PREFIX + k, v)
        writer.close()
        ok = True
    finally:
        if not ok:
            try:
                writer.abort() if hasattr(writer, 'abort') else writer.close()
            except Exception:
                pass
            shutil.rmtree(tmp, ignore_errors=True)
    _replace_dir(tmp, out, overwrite)
    return bag_summary(out)


# ======================================================================================== reading
def open_reader(bag: str | os.PathLike):
    bag = Path(bag)
    if not (bag / 'metadata.yaml').is_file():
        raise BagError(f'{bag} is not a rosbag2 folder (no metadata.yaml)')
    try:
        reader = Reader(bag)
        reader.open()
    except ReaderError as exc:  # truncated / corrupt storage file, malformed metadata.yaml
        raise BagError(f'{bag}: corrupt or truncated bag ({exc})') from None
    return reader


def _metadata(bag: str | os.PathLike) -> dict:
    """The bag's metadata.yaml (rosbag2_bagfile_information)."""
    return yaml.safe_load((Path(bag) / 'metadata.yaml').read_text())['rosbag2_bagfile_information']


def custom_data(bag: str | os.PathLike) -> dict[str, str]:
    return dict(_metadata(bag).get('custom_data') or {})


def bag_summary(bag: str | os.PathLike) -> dict:
    """name, path, storage, duration_s, topics {name: {type, count}}, frames (on /camera/image_raw),
    has_labels, label_frames, width, height, fps, dataset, labels (label format), custom data."""
    bag = Path(bag)
    reader = open_reader(bag)
    try:
        topics = {name: {'type': t.msgtype, 'count': t.msgcount} for name, t in reader.topics.items()}
        info = {'name': bag.name, 'path': str(bag), 'storage': _storage_of(bag),
                'start_ns': reader.start_time, 'duration_s': reader.duration / 1e9,
                'messages': reader.message_count, 'topics': topics}
        custom = custom_data(bag)
        info['custom'] = custom
        frames = topics.get(IMAGE_TOPIC, {}).get('count', 0)
        info.update(frames=frames, label_frames=topics.get(LABEL_TOPIC, {}).get('count', 0))
        info['has_labels'] = info['label_frames'] > 0
        info['dataset'] = custom.get(CUSTOM_PREFIX + 'dataset', 'unknown')
        info['labels'] = custom.get(CUSTOM_PREFIX + 'labels', 'unknown' if info['has_labels'] else 'none')
        w, h = custom.get(CUSTOM_PREFIX + 'width'), custom.get(CUSTOM_PREFIX + 'height')
        fps = custom.get(CUSTOM_PREFIX + 'fps')
        if (w is None or fps is None) and frames:
            conns = [c for c in reader.connections if c.topic == IMAGE_TOPIC]
            stamps = []
            for conn, t, raw in reader.messages(connections=conns):
                if w is None:
                    msg = typestore().deserialize_cdr(raw, conn.msgtype)
                    w, h = msg.width, msg.height
                stamps.append(cdr_stamp_ns(raw))
                if len(stamps) >= 50:
                    break
            if fps is None:
                fps = 1e9 / float(np.median(np.diff(stamps))) if len(stamps) > 1 else 1.0
        info['width'], info['height'] = int(w or 0), int(h or 0)
        info['fps'] = float(fps or 0.0)
        return info
    finally:
        reader.close()


def _storage_of(bag: Path) -> str:
    return _metadata(bag).get('storage_identifier', '')


def format_info(info: dict) -> str:
    """Text like `ros2 bag info`, plus the runespoor custom data."""
    start = info['start_ns'] / 1e9
    lines = [f'Files:             {info["path"]}',
             f'Storage id:        {info["storage"]}',
             f'Duration:          {info["duration_s"]:.3f}s',
             f'Start:             {time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start))} UTC ({start:.3f})',
             f'Messages:          {info["messages"]}',
             'Topic information:']
    for name, t in info['topics'].items():
        lines.append(f'  Topic: {name} | Type: {t["type"]} | Count: {t["count"]}')
    if info.get('frames'):
        lines.append(f'Camera:            {info["width"]}x{info["height"]} @ {info["fps"]:.3g} fps, '
                     f'{info["frames"]} frames, labels: {info["labels"]} ({info["label_frames"]})')
    if info['custom']:
        lines.append('Custom data:')
        lines += [f'  {k}: {v}' for k, v in sorted(info['custom'].items())]
    return '\n'.join(lines)


# ======================================================================================== replay
@dataclass
class PlayItem:
    topic: str
    msgtype: str
    data: bytes          # CDR, restamped when asked
    bag_time_ns: int     # log time in the bag
    due: float           # clock time it is due [s]


class BagPlayback:
    """Replay timing (no ROS): yields a bag's messages when they are due at `rate`, with loops and a start
    offset; optionally maps header stamps onto the playback clock (restamp).

    `restamp`: a message's new header stamp = `now_ns()` at the start of the replay + (its original stamp -
    (bag start + start_offset)) / rate, + the loop's offset -- so messages that shared a stamp (an image and
    its labels) still do, and stamps advance with the replay. Messages are due at the same affine map of
    their log times on `clock`.
    """

    def __init__(self, bag: str | os.PathLike, topics: Iterable[str] | None = None, rate: float = 1.0,
                 loop: bool = False, start_offset: float = 0.0, restamp: bool = False,
                 clock: Callable[[], float] = time.monotonic, now_ns: Callable[[], int] = time.time_ns):
        if not (math.isfinite(rate) and rate > 0):
            raise BagError(f'rate must be a finite number > 0, got {rate!r}')
        if not (math.isfinite(start_offset) and start_offset >= 0):
            raise BagError(f'start_offset must be a finite number >= 0 [s], got {start_offset!r}')
        self.bag = Path(bag)
        self.rate, self.loop, self.start_offset, self.restamp = float(rate), bool(loop), float(start_offset), restamp
        self.clock, self.now_ns = clock, now_ns
        reader = open_reader(self.bag)
        try:
            # rosbags' end_time is exclusive (last log time + 1 ns)
            self.start_ns, self.end_ns = reader.start_time, reader.end_time - 1
            available = {c.topic: c.msgtype for c in reader.connections}
        finally:
            reader.close()
        wanted = [t if t.startswith('/') else '/' + t for t in (topics or [])]
        missing = [t for t in wanted if t not in available]
        if missing:
            raise BagError(f'topic(s) {missing} not in {self.bag} (has {sorted(available)})')
        self.topics = {t: available[t] for t in (wanted or sorted(available))}
        if self.start_ns + self.start_offset * 1e9 > self.end_ns:
            raise BagError(f'start_offset {start_offset:g} s is past the end of {self.bag} '
                           f'({(self.end_ns - self.start_ns) / 1e9:.3f} s long)')
        for t in self.topics.values():
            ensure_type(t)
        self._with_header = {t: has_header(mt) for t, mt in self.topics.items()}
        self.loops_done = 0

    @property
    def period_ns(self) -> int:
        """Length of one pass from the start offset [bag ns] (+ one median frame gap when looping)."""
        return self.end_ns - (self.start_ns + round(self.start_offset * 1e9))

    def _step_ns(self, gaps: list[int]) -> int:
        """Pause between the end of one pass and the next: the median gap between messages, else one
        frame at the bag's recorded fps, else 1 s (a one-frame bag loops once a second, not flat out)."""
        if gaps:
            return int(np.median(gaps))
        try:
            fps = float(custom_data(self.bag).get(CUSTOM_PREFIX + 'fps', 0))
        except (OSError, ValueError):
            fps = 0.0
        return round(1e9 / fps) if fps > 0 else 1_000_000_000

    def items(self, stop: Callable[[], bool] = lambda: False) -> Iterator[PlayItem]:
        """Messages in order with the clock time they are due; the caller waits (see `play`)."""
        t_clock0 = self.clock()
        t_ros0 = self.now_ns()
        first_ns = self.start_ns + round(self.start_offset * 1e9)
        loop_shift = 0
        gaps: list[int] = []
        while True:
            reader = open_reader(self.bag)
            try:
                conns = [c for c in reader.connections if c.topic in self.topics]
                last = None
                for conn, t_ns, raw in reader.messages(connections=conns, start=first_ns):
                    if stop():
                        return
                    rel = (t_ns - first_ns + loop_shift) / self.rate
                    data = bytes(raw)
                    if self.restamp and self._with_header[conn.topic]:
                        st = cdr_stamp_ns(raw)
                        data = restamp_cdr(raw, t_ros0 + round((st - first_ns + loop_shift) / self.rate))
                    if last is not None and t_ns > last and len(gaps) < 1000:
                        gaps.append(t_ns - last)
                    last = t_ns
                    yield PlayItem(conn.topic, conn.msgtype, data, t_ns, t_clock0 + rel / 1e9)
            finally:
                reader.close()
            self.loops_done += 1
            if not self.loop or stop():
                return
            loop_shift += self.period_ns + self._step_ns(gaps)

    def play(self, publish: Callable[[PlayItem], None], stop: Callable[[], bool] = lambda: False,
             sleep: Callable[[float], None] = time.sleep) -> int:
        """Publish every message when it is due; returns how many were published."""
        n = 0
        for item in self.items(stop):
            while True:
                wait = item.due - self.clock()
                if wait <= 0 or stop():
                    break
                sleep(min(wait, 0.1))
            if stop():
                break
            publish(item)
            n += 1
        return n

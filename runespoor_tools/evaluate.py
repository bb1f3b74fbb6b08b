"""`runespoor eval`: restoration methods x scales x JPEG qualities on a data set split -> metrics.json.

Every frame goes through the exact edge encoding (:func:`runespoor_edge.codec.edge_roundtrip`: area
downsample, JPEG, decode) and the cloud chain (:class:`runespoor_cloud.chain.CloudChain`: restoration by
:class:`runespoor_cloud.restore.Restorer`, the frozen :class:`runespoor_cloud.segmentation.Segmenter`,
the tail detector's small-region ratio; the reference path, PLAIN options), and is scored with the metrics
of :mod:`runespoor_cloud.metrics`. ``hr`` is inference on the original frame (no encoding); ``bilinear``
and ``hr`` are always computed because the tail class set is defined by them. A method
whose weight file is missing (or does not load) is reported and skipped.

Per-frame results (confusion matrix, bytes, PSNR, SSIM, small-region ratio of the prediction) are cached
under ``--cache-dir`` (default ``$RUNESPOOR_CACHE`` or ``~/.cache/runespoor``), keyed by the configuration,
the restoration and segmentation weight hashes and each frame file's size and mtime, so a re-run after new
weights appear only computes what changed. ``runespoor profile`` shares this cache.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from runespoor_cloud import metrics as tm
from runespoor_cloud.chain import CloudChain, TailSettings
from runespoor_cloud.metrics import class_iou, confusion_matrix, miou, psnr, ssim
from runespoor_cloud.models import ModelFileError
from runespoor_cloud.restore import Restorer, weight_path
from runespoor_cloud.segmentation import Segmenter
from runespoor_common import fileio, params, paths
from runespoor_common.datasets import DatasetError, get_info, list_samples, load_image, load_label
from runespoor_edge.codec import QUALITY_RANGE, VALID_SCALES, edge_roundtrip

ALL_METHODS = ('bilinear', 'sr', 'asr', 'cloudseg', 'hr')
MODEL_METHODS = ('sr', 'asr', 'cloudseg')
CACHE_VERSION = 1
DEFAULT_SMALL_REGION_AREA = 0.01
DEFAULT_TAIL_DOWNSAMPLE = 4


class EvalError(ValueError):
    """A bad evaluation request (unknown method, no labels, nothing to evaluate); the message says which."""


# --------------------------------------------------------------------------------------------------------
# small helpers


def parse_int_list(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in str(text).replace(' ', '').split(',') if v]
    except ValueError:
        raise EvalError(f'{what}: expected comma-separated integers, got {text!r}') from None
    if not vals:
        raise EvalError(f'{what}: empty list')
    return vals


def file_hash(path: str | os.PathLike | None) -> str:
    """sha256 of a file (first 16 hex digits); 'none' for no file."""
    if path is None:
        return 'none'
    h = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:16]


def jsonable(obj):
    """nan/inf -> None, numpy scalars/arrays -> Python (JSON has no nan)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def write_json_atomic(obj, path: Path) -> Path:
    return fileio.write_json_atomic(jsonable(obj), path, indent=1)


def command_line(sub: str) -> str:
    """`runespoor <sub> ...` as this process was started (for provenance in outputs)."""
    argv = sys.argv[1:]
    if argv and argv[0] == sub:
        argv = argv[1:]
    return ' '.join(['runespoor', sub] + [shlex.quote(a) for a in argv])


def _short(path: Path) -> str:
    """A path relative to the working directory when it lies below it (portable messages and outputs)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def default_cache_dir() -> Path:
    return Path(os.environ.get('RUNESPOOR_CACHE') or Path.home() / '.cache' / 'runespoor')


# --------------------------------------------------------------------------------------------------------
# per-frame scoring


@dataclass
class FrameScore:
    cm: np.ndarray          # KxK int64 confusion matrix (rows = ground truth)
    nbytes: int             # JPEG bytes sent (0 for hr)
    psnr: float             # restored vs HR (inf for hr)
    ssim: float
    ratio: float            # small-region ratio of the prediction (the tail detector's input)
    t_restore: float        # seconds
    t_seg: float


def score_frame(hr: np.ndarray, label: np.ndarray, chain, method: str, scale: int, quality: int | None,
                image_quality: bool = True) -> FrameScore:
    """One frame through edge encoding and the cloud chain (runespoor_cloud/chain.py: restore -> segment ->
    tail), scored against `label`. ``hr``: the original frame, not encoded, not restored."""
    h, w = hr.shape[:2]
    t0 = time.perf_counter()
    if method == 'hr':
        lr, nbytes, scale = hr, 0, 1
    else:
        lr, nbytes = edge_roundtrip(hr, int(scale), int(quality))
    t_edge = time.perf_counter() - t0
    res = chain.process(lr, int(scale), (w, h))
    seg = chain.segmenter
    cm = confusion_matrix(res.labels, label, seg.num_classes, seg.info.ignore_label)
    if method == 'hr':
        p, s = float('inf'), 1.0
    elif image_quality:
        p, s = psnr(res.restored, hr), ssim(res.restored, hr)
    else:
        p, s = float('nan'), float('nan')
    return FrameScore(cm, int(nbytes), float(p), float(s), float(res.tail.small_region_ratio),
                      t_edge + res.times_ms['restore'] / 1000.0, res.times_ms['segment'] / 1000.0)


class FrameCache:
    """Per-configuration .npz of FrameScores, keyed by frame (path, size, mtime). Writes are atomic."""

    def __init__(self, cache_dir: Path | None, config_key: str):
        self.path = None if cache_dir is None else Path(cache_dir) / f'{config_key}.npz'
        self.rows: dict[str, FrameScore] = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    for i, key in enumerate(z['keys']):
                        self.rows[str(key)] = FrameScore(z['cm'][i], int(z['nbytes'][i]), float(z['psnr'][i]),
                                                         float(z['ssim'][i]), float(z['ratio'][i]),
                                                         float(z['t_restore'][i]), float(z['t_seg'][i]))
            except Exception as exc:  # a damaged cache file is recomputed, never fatal
                print(f'cache: ignoring unreadable {self.path} ({type(exc).__name__}: {exc})', file=sys.stderr)
                self.rows = {}

    @staticmethod
    def frame_key(path: Path) -> str:
        st = Path(path).stat()
        return f'{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}'

    def get(self, key: str) -> FrameScore | None:
        return self.rows.get(key)

    def put(self, key: str, score: FrameScore) -> None:
        self.rows[key] = score
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty or not self.rows:
            return
        keys = list(self.rows)
        r = [self.rows[k] for k in keys]
        fileio.write_atomic(self.path, lambda fh: np.savez(
            fh, keys=np.array(keys), cm=np.stack([x.cm for x in r]), nbytes=np.array([x.nbytes for x in r], np.int64),
            psnr=np.array([x.psnr for x in r]), ssim=np.array([x.ssim for x in r]),
            ratio=np.array([x.ratio for x in r]), t_restore=np.array([x.t_restore for x in r]),
            t_seg=np.array([x.t_seg for x in r])), binary=True)
        self.dirty = False


def config_key(dataset: str, method: str, scale: int, quality: int | None, weights_hash: str, seg_hash: str,
               small_region_area: float, tail_downsample: int, image_quality: bool) -> str:
    q = 'raw' if quality is None else f'q{quality}'
    tag = hashlib.sha1(f'{CACHE_VERSION}|{weights_hash}|{seg_hash}|{small_region_area}|{tail_downsample}|'
                       f'{image_quality}'.encode()).hexdigest()[:12]
    return f'{dataset}-{method}-x{scale}-{q}-{tag}'


# --------------------------------------------------------------------------------------------------------
# running configurations over a split


@dataclass(frozen=True)
class Config:
    method: str      # bilinear | sr | asr | cloudseg | hr
    scale: int       # 1 for hr
    quality: int | None

    @property
    def name(self) -> str:
        return 'hr' if self.method == 'hr' else f'{self.method}-x{self.scale}-q{self.quality}'


class Runner:
    """Loads the segmenter and the restorers once; scores configurations over a list of samples."""

    def __init__(self, dataset: str, weights_dir: Path, model_dir: Path | None, device: str = 'cpu',
                 seg_arch: str = 'espnet', seg_weights: Path | None = None,
                 small_region_area: float = DEFAULT_SMALL_REGION_AREA,
                 tail_downsample: int = DEFAULT_TAIL_DOWNSAMPLE, cache_dir: Path | None = None,
                 size: tuple[int, int] | None = None):
        self.size = tuple(size) if size else None   # (w, h) frames and labels are resized to, None = as stored
        self.dataset = dataset
        self.weights_dir = Path(weights_dir)
        self.device = device
        self.segmenter = Segmenter(seg_arch, seg_weights, dataset, device, model_dir=model_dir)
        self.seg_hash = file_hash(self.segmenter.weights)
        self.small_region_area = small_region_area
        self.tail_downsample = tail_downsample
        self.cache_dir = cache_dir
        self._restorers: dict[tuple[str, int], object] = {}
        self._chains: dict[tuple[str, int], object] = {}
        self._hashes: dict[tuple[str, int], str] = {}

    def weight_file(self, method: str, scale: int) -> Path | None:
        if method in ('bilinear', 'hr') or scale == 1:
            return None
        return weight_path(self.weights_dir, self.dataset, method, scale)

    def restorer(self, method: str, scale: int):
        """The Restorer for (method, scale); raises ModelFileError / ValueError when it cannot load."""
        key = (method, int(scale))
        if key not in self._restorers:
            if method == 'hr':
                self._restorers[key] = None
                self._hashes[key] = 'none'
            else:
                m = 'bilinear' if scale == 1 else method
                self._restorers[key] = Restorer({int(scale): m}, self.weights_dir, self.dataset, self.device)
                self._hashes[key] = file_hash(self.weight_file(method, scale))
            # threshold 0: only the small-region ratio is scored, not a verdict
            self._chains[key] = CloudChain(self._restorers[key], self.segmenter, TailSettings(
                small_region_area=self.small_region_area, tail_threshold=0.0, downsample=self.tail_downsample))
        return self._restorers[key]

    def check(self, method: str, scale: int) -> str | None:
        """None when (method, scale) can run, else why not (missing or unloadable weights)."""
        f = self.weight_file(method, scale)
        if f is not None and not f.is_file():
            return f'{method} x{scale}: weight file {_short(f)} is missing'
        try:
            self.restorer(method, scale)
        except (ModelFileError, ValueError, KeyError) as exc:
            return f'{method} x{scale}: {exc}'
        return None

    def cache_for(self, cfg: Config, image_quality: bool) -> FrameCache:
        self.restorer(cfg.method, cfg.scale)
        key = config_key(self.dataset, 'bilinear' if cfg.scale == 1 and cfg.method != 'hr' else cfg.method,
                         cfg.scale, cfg.quality, self._hashes[(cfg.method, cfg.scale)], self.seg_hash,
                         self.small_region_area, self.tail_downsample, image_quality)
        if self.size is None:
            key += '-source'
        elif self.size != tuple(get_info(self.dataset).native_size):   # the default size has no suffix
            key += f'-{self.size[0]}x{self.size[1]}'
        return FrameCache(self.cache_dir, key)

    def run(self, samples, configs: list[Config], image_quality: bool = True, desc: str = 'eval',
            progress: bool = True) -> dict[Config, list[FrameScore]]:
        """Score every config on every sample (frames outer, so each frame is read once)."""
        caches = {c: self.cache_for(c, image_quality) for c in configs}
        keys = [FrameCache.frame_key(s.image_path) for s in samples]
        todo = [i for i, k in enumerate(keys) if any(caches[c].get(k) is None for c in configs)]
        cached = len(samples) - len(todo)
        if cached and progress:
            print(f'{desc}: {cached}/{len(samples)} frames fully cached under {self.cache_dir}', flush=True)
        last_save = time.monotonic()
        it = tqdm(todo, desc=desc, unit='frame', mininterval=2, disable=not progress or not todo)
        try:
            for i in it:
                s = samples[i]
                if s.label_path is None:
                    raise EvalError(f'{s.image_path}: no label map (expected one beside it); evaluation needs '
                                    f'labelled frames')
                hr = load_image(s.image_path)
                label = load_label(self.dataset, s.label_path)
                if self.size and (hr.shape[1], hr.shape[0]) != self.size:
                    hr = cv2.resize(hr, self.size, interpolation=cv2.INTER_AREA)
                    label = cv2.resize(label, self.size, interpolation=cv2.INTER_NEAREST)
                if label.shape != hr.shape[:2]:
                    raise EvalError(f'{s.label_path}: label {label.shape} does not match image '
                                    f'{hr.shape[:2]} of {s.image_path}')
                for c in configs:
                    if caches[c].get(keys[i]) is None:
                        caches[c].put(keys[i], score_frame(
                            hr, label, self._chains[(c.method, c.scale)], c.method, c.scale, c.quality,
                            image_quality))
                if time.monotonic() - last_save > 60:
                    for cache in caches.values():
                        cache.save()
                    last_save = time.monotonic()
        finally:
            for cache in caches.values():
                cache.save()
        return {c: [caches[c].get(k) for k in keys] for c in configs}


# --------------------------------------------------------------------------------------------------------
# summaries (pure: from FrameScores to the metrics.json rows)


def summarize(scores: dict[Config, list[FrameScore]], sequences: list[str], class_names: list[str],
              episode_length: int = 10) -> list[dict]:
    """metrics.json rows, one per config: overall and class-wise, tail set, frame-wise, image quality."""
    hr_cfg = next((c for c in scores if c.method == 'hr'), None)
    if hr_cfg is None:
        raise EvalError('the tail metrics need the hr results')
    cms = {c: np.sum([f.cm for f in fs], axis=0) for c, fs in scores.items()}
    iou_hr = class_iou(cms[hr_cfg])
    tails: dict[tuple[int, int | None], list[int]] = {}
    for c in scores:
        if c.method == 'bilinear':
            tails[(c.scale, c.quality)] = tm.tail_class_set(class_iou(cms[c]), iou_hr)
    rows = []
    for c, fs in scores.items():
        iou = class_iou(cms[c])
        ep = tm.episode_mious([f.cm for f in fs], sequences, episode_length)
        row = {'method': c.method, 'scale': c.scale, 'quality': c.quality, 'frames': len(fs),
               'miou': miou(cms[c]), 'class_iou': {n: float(v) for n, v in zip(class_names, iou)}}
        tail = tails.get((c.scale, c.quality))
        if tail is not None:
            row.update(tail_classes=[class_names[i] for i in tail], tail_miou=tm.tail_miou(iou, tail),
                       tail_miou_normalized=tm.tail_miou_normalized(iou, iou_hr, tail))
        else:   # hr: scored on every scale's tail set separately (see the bilinear rows); no set of its own
            row.update(tail_classes=None, tail_miou=None, tail_miou_normalized=None)
        row.update(tm.frame_tail_stats(ep))
        row['episode_miou'] = ep
        row['psnr'] = None if c.method == 'hr' else float(np.mean([f.psnr for f in fs]))
        row['ssim'] = None if c.method == 'hr' else float(np.mean([f.ssim for f in fs]))
        row['kbytes_per_frame'] = None if c.method == 'hr' else float(np.mean([f.nbytes for f in fs])) / 1000.0
        row['frame_miou'] = [tm.present_miou(f.cm) for f in fs]
        row['small_region_ratio'] = [f.ratio for f in fs]
        row['ms_restore'] = 1000.0 * float(np.mean([f.t_restore for f in fs]))
        row['ms_segment'] = 1000.0 * float(np.mean([f.t_seg for f in fs]))
        rows.append(row)
    # HR on each tail set, so tables can show the HR column per scale
    hr_row = next(r for r in rows if r['method'] == 'hr')
    hr_row['tail_miou_by_scale'] = {f'x{s}-q{q}': tm.tail_miou(iou_hr, t) for (s, q), t in tails.items()}
    gt = cms[hr_cfg].sum(1).astype(np.float64)
    hr_row['class_pixel_share'] = {n: float(v) for n, v in zip(class_names, gt / max(gt.sum(), 1.0))}
    return rows


# --------------------------------------------------------------------------------------------------------
# CLI


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', default='camvid', choices=('camvid', 'cityscapes'))
    parser.add_argument('--data-root', default=None, help='data root (default $RUNESPOOR_DATA or ../shared/data)')
    parser.add_argument('--model-dir', default=None,
                        help='third-party weights (segmentation; default $RUNESPOOR_MODELS or ../shared/models)')
    parser.add_argument('--weights-dir', type=Path, default=None,
                        help="the project's own SR/ASR weights (default models/ of the package)")
    parser.add_argument('--seg-arch', default='espnet')
    parser.add_argument('--seg-weights', type=Path, default=None,
                        help='segmentation weight file (default <model-dir>/espnet/espnet_p_2_q_8_<dataset>.pth)')
    parser.add_argument('--limit', type=int, default=None, help='use only the first N frames (sequence order)')
    parser.add_argument('--every', type=int, default=1, help='use every k-th frame (before --limit)')
    parser.add_argument('--small-region-area', type=float, default=DEFAULT_SMALL_REGION_AREA,
                        help='tail detector: a region is small below this fraction of the frame')
    parser.add_argument('--tail-downsample', type=int, default=DEFAULT_TAIL_DOWNSAMPLE,
                        help='tail detector: label-map subsampling factor')
    parser.add_argument('--size', default='native',
                        help='frame size WxH the source is resized to first: "native" = the segmentation model\'s '
                             'training size (CamVid 480x360, Cityscapes 1024x512), "source" = as stored')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides)')
    parser.add_argument('--cache-dir', type=Path, default=None,
                        help='per-frame result cache (default $RUNESPOOR_CACHE or ~/.cache/runespoor)')
    parser.add_argument('--no-cache', action='store_true', help='compute everything, read and write no cache')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument('--split', default='val', help='train | val | test (any split on disk)')
    parser.add_argument('--scales', default='2,4,6,8', help='comma-separated scales (2, 4, 6, 8)')
    parser.add_argument('--methods', default=','.join(ALL_METHODS),
                        help=f'comma-separated, from {",".join(ALL_METHODS)} (bilinear and hr always run)')
    parser.add_argument('--jpeg-quality', default='90', help='JPEG quality, or a comma-separated list (40..95)')
    parser.add_argument('--episode-length', type=int, default=10, help='frames per episode (frame-wise metrics)')
    parser.add_argument('--no-image-quality', action='store_true', help='skip PSNR/SSIM (faster)')
    parser.add_argument('--out', type=Path, required=True, help='output folder (metrics.json is written there)')


def select_samples(dataset: str, root, split: str, every: int = 1, limit: int | None = None):
    samples = list_samples(dataset, root, split)[::max(1, int(every))]
    return samples[:limit] if limit else samples


def setup_runner(args) -> 'Runner':
    if args.threads:
        torch.set_num_threads(int(args.threads))
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    return Runner(args.dataset, args.weights_dir or paths.weights_dir(),
                  paths.model_dir(args.model_dir) if args.seg_weights is None else None, args.device,
                  args.seg_arch, args.seg_weights, args.small_region_area, args.tail_downsample, cache,
                  parse_size(args.size, args.dataset))


def parse_size(text: str | None, dataset: str) -> tuple[int, int] | None:
    """--size: 'native' -> the data set's model size, 'source' -> None (as stored), 'WxH' -> (W, H)."""
    if text in (None, 'source'):
        return None
    try:
        return params.parse_size(text, '--size', native=get_info(dataset).native_size)
    except ValueError as exc:
        raise EvalError(f'{exc} (or source)') from None


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    scales = parse_int_list(args.scales, '--scales')
    qualities = parse_int_list(args.jpeg_quality, '--jpeg-quality')
    methods = [m for m in str(args.methods).replace(' ', '').split(',') if m]
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad:
        raise SystemExit(f'runespoor eval: unknown method(s) {bad}; choose from {",".join(ALL_METHODS)}')
    if any(s not in VALID_SCALES or s == 1 for s in scales):
        raise SystemExit(f'runespoor eval: scales must be among {VALID_SCALES[1:]}, got {scales}')
    if any(not QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1] for q in qualities):
        raise SystemExit(f'runespoor eval: JPEG quality must be in {QUALITY_RANGE}, got {qualities}')
    info = get_info(args.dataset)
    try:
        root = paths.data_root(args.data_root)
        samples = select_samples(args.dataset, root, args.split, args.every, args.limit)
        runner = setup_runner(args)
    except (DatasetError, ModelFileError, FileNotFoundError, EvalError) as exc:
        print(f'runespoor eval: {exc}', file=sys.stderr)
        return 2
    configs = [Config('hr', 1, None)]
    skipped = []
    for s in scales:
        for q in qualities:
            configs.append(Config('bilinear', s, q))
    for m in (m for m in MODEL_METHODS if m in methods):
        for s in scales:
            why = runner.check(m, s)
            if why:
                skipped.append({'method': m, 'scale': s, 'reason': why})
                print(f'runespoor eval: skipping {why}', file=sys.stderr, flush=True)
                continue
            configs.extend(Config(m, s, q) for q in qualities)
    extra = [m for m in ('bilinear', 'hr') if m not in methods]
    if extra:
        print(f'runespoor eval: also running {" and ".join(extra)} (they define the tail class set)', flush=True)
    print(f'runespoor eval: {args.dataset} {args.split}, {len(samples)} frames, {len(configs)} configurations '
          f'({", ".join(sorted({c.method for c in configs}))}) on {args.device}', flush=True)
    try:
        scores = runner.run(samples, configs, image_quality=not args.no_image_quality)
    except (DatasetError, EvalError, ModelFileError) as exc:
        print(f'runespoor eval: {exc}', file=sys.stderr)
        return 2
    rows = summarize(scores, [s.sequence for s in samples], list(info.class_names), args.episode_length)
    for r in rows:
        if r['method'] != 'hr':
            wf = runner.weight_file(r['method'], r['scale'])
            r['weights'] = _short(wf) if wf else ''
    out = {
        'kind': 'runespoor-eval', 'dataset': args.dataset, 'split': args.split, 'data_root': str(root),
        'frames': len(samples), 'frame_names': [s.image_path.name for s in samples],
        'sequences': [s.sequence for s in samples], 'scales': scales, 'jpeg_quality': qualities,
        'methods': sorted({c.method for c in configs}), 'class_names': list(info.class_names),
        'episode_length': args.episode_length, 'small_region_area': args.small_region_area,
        'tail_downsample': args.tail_downsample, 'segmentation': str(runner.segmenter.weights),
        'size': list(runner.size) if runner.size else 'source',
        'device': args.device, 'threads': args.threads, 'skipped': skipped,
        'command': command_line('eval'),
        'seconds': time.perf_counter() - t_start, 'results': rows,
    }
    path = write_json_atomic(out, Path(args.out) / 'metrics.json')
    print(f'\n| method | scale | q | mIoU % | tail mIoU % | tail/HR | p90 % | p99 % | PSNR | SSIM | kB/frame |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    fmt = lambda v, f, k=1: '-' if v is None or (isinstance(v, float) and not math.isfinite(v)) \
        else format(v * k, f)  # noqa: E731
    for r in rows:
        print(f"| {r['method']} | x{r['scale']} | {r['quality'] or '-'} | {fmt(r['miou'], '.2f', 100)} | "
              f"{fmt(r['tail_miou'], '.2f', 100)} | {fmt(r['tail_miou_normalized'], '.3f')} | "
              f"{fmt(r['frame_p90'], '.2f', 100)} | {fmt(r['frame_p99'], '.2f', 100)} | {fmt(r['psnr'], '.2f')} | "
              f"{fmt(r['ssim'], '.4f')} | {fmt(r['kbytes_per_frame'], '.2f')} |")
    if skipped:
        print(f'\nskipped (weights missing or unloadable): ' + '; '.join(s['reason'] for s in skipped))
    print(f'\nwrote {path} ({time.perf_counter() - t_start:.0f} s)')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='runespoor eval', description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

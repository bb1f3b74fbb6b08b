"""`runespoor bench`: edge, cloud, transport and control latencies, median and p95, in one JSON file.

    runespoor bench [--quick] [--device cpu|cuda] [--threads N] --out bench.json

Measures, at CamVid size (480x360) and Cityscapes size (2048x1024):
  edge       area downsample + JPEG encode per scale (1, 2, 4, 6, 8) and quality (bytes too);
             image conversion (runespoor_common/imgconv.py, real cv_bridge or its stand-in): camera Image ->
             RGB (rgb8 must be a view of msg.data, no copy; bgr8 and mono16 convert) and RGB -> Image;
  cloud      JPEG decode; restore per method (bilinear, sr, asr) per scale; segmentation; tail detection;
             the whole cloud chain decode -> restore -> segment -> tail and its frames/s, naive (eager fp32,
             Restorer/Segmenter with PLAIN options) vs optimized (their OPTIMIZED options,
             runespoor_cloud/inference.py), both through runespoor_cloud/chain.py, and the cumulative
             ablation of the optimizations; the optimized chain's output error against the naive chain;
  transport  EncodedFrame and full-resolution sensor_msgs/Image latency between two processes over DDS
             (a pong subprocess stamps the arrival time; one machine, one clock);
  control    CAC reaction time through the real nodes: a synthetic tail TailReport -> cac_controller
             publishes the tail knobs -> edge_streamer sends the first frame with them;
and the machine (CPU, cores, threads, load, versions), the ratios of the same run (ASR / bilinear cost,
optimized / naive chain) and the project's targets, met or not.

Speed is measured here, never asserted in tests. DDS stays on loopback in a ROS domain of its own
(runespoor_common.rosenv). Render the Markdown tables of a result with ``--markdown bench.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from runespoor_cloud.chain import CloudChain, compare_outputs
from runespoor_cloud.inference import (ABLATION, COMPILED, EXACT, OPTIMIZED, TOLERANCE, available_cores,
                                       configure_threads, cpu_has_native_bf16)
from runespoor_cloud.metrics import psnr
from runespoor_cloud.models import build
from runespoor_cloud.restore import Restorer, weight_path
from runespoor_cloud.segmentation import Segmenter
from runespoor_cloud.tail import DEFAULT_DOWNSAMPLE, analyze
from runespoor_common import imgconv, paths, stats
from runespoor_common.datasets import list_samples, load_image
from runespoor_common.fileio import write_json_atomic
from runespoor_common.params import parse_size
from runespoor_edge.codec import decode_jpeg, edge_encode, edge_roundtrip

SCHEMA = 'runespoor-bench/1'
DEFAULT_SIZES = ((480, 360), (2048, 1024))
SCALES = (1, 2, 4, 6, 8)
SR_SCALES = (2, 4, 6, 8)
METHODS = ('bilinear', 'sr', 'asr')

#: The paper's figures (Wang et al., INFOCOM 2021 / journal): K40m GPUs, 2048x1024 Cityscapes frames.
PAPER = {'asr_ms_2048x1024': [68.0, 80.0], 'segmentation_ms_2048x1024': 316.0, 'cac_reaction_ms': 500.0,
         'hardware': 'NVIDIA K40m GPU'}


# --------------------------------------------------------------------------- statistics
def summarize(samples_ms: list[float]) -> dict:
    """n, median, p95, min, mean of a list of times [ms] (keys `median_ms` ..., 4 decimals)."""
    return stats.summarize(samples_ms, unit='ms', digits=4)


def measure(fn: Callable[[int], object], reps: int, warmup: int = 1, sync: Callable[[], None] | None = None
            ) -> dict:
    """Time `fn(i)` `reps` times after `warmup` untimed calls (i cycles inputs)."""
    for i in range(warmup):
        fn(i)
        if sync:
            sync()
    out = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        if sync:
            sync()
        out.append((time.perf_counter() - t0) * 1000.0)
    return summarize(out)


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as fh:
            for line in fh:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BUSY_PATTERNS = ('runespoor_tools.train', 'runespoor_tools.profile', 'runespoor_tools.evaluate', 'cli train',
                 'cli profile', 'cli eval', 'cli bench')


def busy_processes(patterns=BUSY_PATTERNS) -> list[str]:
    """Command lines of other processes matching `patterns` (training, profiling, evaluation or another
    benchmark sharing the CPU), so a result says what else was running."""
    found = []
    me = os.getpid()
    for d in Path('/proc').iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            cmd = (d / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace').strip()
        except OSError:
            continue
        if cmd and any(p in cmd for p in patterns):
            found.append(cmd[:160])
    return sorted(found)


def machine_info(device: str, threads: int) -> dict:
    info = {
        'cpu_model': _cpu_model(), 'logical_cpus': os.cpu_count(), 'cores_available': available_cores(),
        'torch_threads': torch.get_num_threads(), 'requested_threads': threads, 'opencv_threads': cv2.getNumThreads(),
        'cpu_native_bf16': cpu_has_native_bf16(), 'device': device,
        'torch_cpu_capability': getattr(torch.backends.cpu, 'get_cpu_capability', lambda: '?')(),
        'python': platform.python_version(), 'torch': torch.__version__, 'numpy': np.__version__,
        'opencv': cv2.__version__, 'platform': platform.platform(),
        'ros_distro': os.environ.get('ROS_DISTRO', ''), 'loadavg_start': list(os.getloadavg()),
        'other_busy_processes': busy_processes(),
    }
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
        info['cuda'] = torch.version.cuda
    try:
        info['rclpy'] = version('ros-rclpy')
    except Exception:
        info['rclpy'] = None
    return info


# --------------------------------------------------------------------------- inputs and models
def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = parse_size(text) or (0, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f'size {text!r} is too small (at least 8x8)')
    return w, h


def load_frames(size: tuple[int, int], data_root: str | None, count: int) -> tuple[list[np.ndarray], str]:
    """`count` RGB frames of `size`: CamVid val frames at 480x360, the Cityscapes frame at 2048x1024, a
    resized CamVid frame for other sizes; synthetic frames when the data set is absent (said in `source`)."""
    w, h = size
    try:
        root = paths.data_root(data_root)
        if (w, h) == (2048, 1024):
            samples = list_samples('cityscapes', root, 'val')[:count]
            src = 'cityscapes val'
        else:
            samples = list_samples('camvid', root, 'val')
            samples = samples[::max(1, len(samples) // count)][:count]
            src = 'camvid val'
        frames = [load_image(s.image_path) for s in samples]
        frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
                  for f in frames]
        if (w, h) not in ((480, 360), (2048, 1024)):
            src += f' resized to {w}x{h}'
        return frames, src + f' ({len(frames)} frames: ' + ', '.join(s.image_path.name for s in samples) + ')'
    except (FileNotFoundError, ValueError) as exc:
        rng = np.random.default_rng(0)
        frames = []
        for _ in range(count):
            small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
            frames.append(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
        return frames, f'synthetic (no data: {exc})'


def make_restorer(methods: tuple[str, ...], scales: tuple[int, ...], device: str, weights_dir: str | None,
                  dataset: str = 'camvid'):
    """A Restorer (PLAIN options) for each method in `methods` ({method: (Restorer, {scale: weights note})}).

    Trained weights are used where their file exists; otherwise a randomly initialised CARN-M of the right
    architecture and scale stands in (same cost, meaningless output), passed as the Restorer's `models`, and
    the note says so."""
    wdir = Path(weights_dir) if weights_dir else paths.weights_dir()
    out = {}
    for method in methods:
        if method == 'bilinear':
            out[method] = (Restorer({s: 'bilinear' for s in scales}, wdir, dataset, device), {})
            continue
        have = {s: weight_path(wdir, dataset, method, s) for s in scales}
        notes, stand_ins = {}, {}
        for s in scales:
            if have[s].is_file():
                notes[s] = f'trained: {have[s].name}'
                continue
            # no trained file yet: same architecture, random weights (documented in the JSON)
            torch.manual_seed(s)
            m = build('carn_m', scale=s).eval()
            for p in m.parameters():
                p.requires_grad_(False)
            stand_ins[s] = m
            notes[s] = f'random-init carn_m x{s} ({have[s].name} not found): timing only'
        r = Restorer({s: method for s in scales}, wdir, dataset, device, models=stand_ins)
        out[method] = (r, notes)
    return out


# --------------------------------------------------------------------------- sections
class Bench:
    """One benchmark run: a method per section (each returns its rows), and `run` for all of them."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.device = args.device
        self.reps = args.reps or (3 if args.quick else 15)
        self.results: dict = {}
        self.t_start = time.perf_counter()
        self.log = (lambda *a: None) if args.silent else (lambda *a: print('[bench]', *a, file=sys.stderr,
                                                                             flush=True))

    def sync(self):
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()

    def reps_for(self, size, heavy=False) -> int:
        """Fewer repetitions for the slow runs (naive models, SR at full resolution)."""
        if not heavy:
            return self.reps
        big = size[0] * size[1] > 1_000_000
        if self.quick:
            return 1 if big else min(self.reps, 2)
        return 3 if big else self.reps

    # ---- edge
    def edge(self, size, frames):
        qualities = (75,) if self.quick else (40, 75, 95)
        rows = []
        for scale in self.args.scales_all:
            for q in qualities:
                nbytes = len(edge_encode(frames[0], scale, q))
                st = measure(lambda i: edge_encode(frames[i % len(frames)], scale, q), max(self.reps, 10), 2)
                rows.append({'size': _sz(size), 'scale': scale, 'quality': q, 'bytes': nbytes, **st})
        return rows

    # ---- image conversion (sensor_msgs/Image <-> NumPy, the one module)
    def image_conversion(self, size, frames):
        rgb = frames[0]
        msgs = {'rgb8': imgconv.rgb_to_image(rgb, 'rgb8'), 'bgr8': imgconv.rgb_to_image(rgb, 'bgr8'),
                'mono16': imgconv.bridge().cv2_to_imgmsg(rgb[:, :, 1].astype(np.uint16) * 257, 'mono16')}
        rows = []
        for enc, msg in msgs.items():
            out = imgconv.image_to_rgb(msg)
            view = bool(np.shares_memory(out, np.frombuffer(msg.data, np.uint8)))
            st = measure(lambda i: imgconv.image_to_rgb(msg), max(self.reps, 10), 2)
            rows.append({'size': _sz(size), 'op': f'image_to_rgb({enc})', 'backend': imgconv.BACKEND,
                         'view': view, **st})
        st = measure(lambda i: imgconv.rgb_to_image(rgb, 'rgb8'), max(self.reps, 10), 2)
        rows.append({'size': _sz(size), 'op': 'rgb_to_image(rgb8)', 'backend': imgconv.BACKEND, 'view': False, **st})
        return rows

    # ---- decode
    def decode(self, size, frames):
        rows = []
        for scale in self.args.scales_all:
            data = [edge_encode(f, scale, 75) for f in frames]
            for impl, fn in (('naive', decode_jpeg), ('optimized', lambda d: decode_jpeg(d, rgb_direct=True))):
                st = measure(lambda i: fn(data[i % len(data)]), max(self.reps, 10), 2)
                rows.append({'size': _sz(size), 'scale': scale, 'quality': 75, 'impl': impl, **st})
        return rows

    # ---- restore
    def restore(self, size, frames, restorers, fast, chain_method):
        rows = []
        w, h = size
        big = w * h > 1_000_000
        for method, (r, notes) in restorers.items():
            for scale in self.args.scales:
                learned = method != 'bilinear'
                if self.quick and big and learned and (method != chain_method or scale != 4):
                    continue  # quick: at 2048x1024 only the chain's method at x4
                lrs = [edge_roundtrip(f, scale, 75)[0] for f in frames]
                for impl, obj in (('naive', r), ('optimized', fast[method])):
                    if self.quick and big and learned and impl == 'naive':
                        continue
                    heavy = learned and (impl == 'naive' or big)
                    st = measure(lambda i: obj.restore(lrs[i % len(lrs)], scale, (w, h)),
                                 self.reps_for(size, heavy=heavy), 1, self.sync)
                    rows.append({'size': _sz(size), 'method': method, 'scale': scale, 'impl': impl,
                                 'lr_size': f'{lrs[0].shape[1]}x{lrs[0].shape[0]}',
                                 'weights': notes.get(scale, 'none needed'), **st})
                    self.log(f'restore {_sz(size)} {method} x{scale} {impl}: {st["median_ms"]:.1f} ms')
        return rows

    # ---- segmentation
    def segmentation(self, size, frames, seg, fseg):
        rows = []
        for impl, obj in (('naive', seg), ('optimized', fseg)):
            st = measure(lambda i: obj.predict(frames[i % len(frames)]), self.reps_for(size, heavy=impl == 'naive'),
                         1, self.sync)
            rows.append({'size': _sz(size), 'arch': seg.arch, 'dataset': seg.info.name, 'impl': impl, **st})
            self.log(f'segmentation {_sz(size)} {impl}: {st["median_ms"]:.1f} ms')
        return rows

    # ---- tail detector
    def tail(self, size, label_maps):
        rows = []
        for ds in (DEFAULT_DOWNSAMPLE, 1):
            st = measure(lambda i: analyze(label_maps[i % len(label_maps)], downsample=ds),
                         max(self.reps * 10, 50), 3)
            lh, lw = label_maps[0][::ds, ::ds].shape
            rows.append({'size': _sz(size), 'downsample': ds, 'analyzed_size': f'{lw}x{lh}', **st})
        return rows

    # ---- whole chain
    def chain(self, size, frames, restorers, seg, configs, fast, fseg):
        """Naive and optimized chain per (method, scale), measured alternately frame by frame so that
        both see the same machine load (the ratio is then a fair one even on a shared machine)."""
        rows = []
        w, h = size
        big = w * h > 1_000_000
        for method, scale in configs:
            r, notes = restorers[method]
            data = [edge_encode(f, scale, 75) for f in frames]
            chains = {}
            if not (self.quick and big and method != 'bilinear'):
                chains['naive'] = CloudChain(r, seg)
            chains['optimized'] = CloudChain(fast[method], fseg)
            heavy = 'naive' in chains and method != 'bilinear' or (big and method != 'bilinear')
            times = _round_robin(chains, data, scale, size, self.reps_for(size, heavy=heavy))
            for impl, chain in chains.items():
                st = summarize([t for t, _ in times[impl]])
                stage_med = {k: round(statistics.median(sg[k] for _, sg in times[impl]), 3)
                             for k in times[impl][0][1]}
                rows.append({'size': _sz(size), 'method': method, 'scale': scale, 'impl': impl,
                             'options': 'naive (plain classes)' if impl == 'naive' else chain.options.describe(),
                             'fps': round(1000.0 / st['median_ms'], 2), 'stages_median_ms': stage_med,
                             'weights': notes.get(scale, 'none needed'), **st})
                self.log(f'chain {_sz(size)} {method} x{scale} {impl}: {st["median_ms"]:.1f} ms '
                         f'({rows[-1]["fps"]} fps)')
        return rows

    # ---- fidelity of the optimized chain
    def fidelity(self, size, frames, restorers, seg, fast_r, fseg, configs):
        """Optimized vs naive chain on the same frames: label agreement, tail verdicts, restored PSNR, and
        the model's own noise floor: the agreement of the naive labels with the labels of the naive restored
        frame plus uniform +-1 grey-level noise (how stable the segmentation is at this size at all)."""
        rows = []
        w, h = size
        rng = np.random.default_rng(0)
        for method, scale in configs:
            r, notes = restorers[method]
            naive, fast = CloudChain(r, seg), CloudChain(fast_r[method], fseg)
            fr = fast_r[method]
            agree, same, psnrs, floor = [], [], [], []
            for f in frames:
                data = edge_encode(f, scale, 75)
                cmp = compare_outputs(naive(data, scale, (w, h)), fast(data, scale, (w, h)))
                agree.append(cmp['label_agreement'])
                same.append(cmp['same_tail_verdict'])
                lr = edge_roundtrip(f, scale, 75)[0]
                hr = r.restore(lr, scale, (w, h))
                if method != 'bilinear':
                    psnrs.append(psnr(hr, fr.restore(lr, scale, (w, h))))
                noisy = np.clip(hr.astype(np.int16) + rng.integers(-1, 2, hr.shape, dtype=np.int16), 0, 255)
                floor.append(float((seg.predict(hr) == seg.predict(noisy.astype(np.uint8))).mean()))
            bound = min(TOLERANCE['label_agreement'], min(floor))
            row = {'size': _sz(size), 'method': method, 'scale': scale, 'frames': len(frames),
                   'options': fast.options.describe(),
                   'label_agreement_min': round(min(agree), 6), 'label_agreement_mean': round(float(np.mean(agree)), 6),
                   'noise_floor_agreement_min': round(min(floor), 6), 'agreement_bound': round(bound, 6),
                   'same_tail_verdict': all(same),
                   'restored_psnr_db_min': (round(min(psnrs), 2) if psnrs and np.isfinite(min(psnrs)) else
                                            ('identical' if psnrs else None)),
                   'weights': notes.get(scale, 'none needed')}
            ok_psnr = not psnrs or min(psnrs) >= TOLERANCE['restored_psnr_db']
            row['within_tolerance'] = bool(min(agree) >= bound and ok_psnr)
            rows.append(row)
        return rows

    # ---- ablation
    def ablation(self, size, frames, restorers, seg, configs):
        """Cumulative optimization steps on the whole chain, measured round-robin (one frame per step in
        turn) so that a change in the machine's load hits every step alike."""
        rows = []
        w, h = size
        steps = list(ABLATION) + ([] if self.args.no_compile else [('+inductor_compiled_segmentation', COMPILED)])
        for method, scale in configs:
            r, _ = restorers[method]
            data = [edge_encode(f, scale, 75) for f in frames]
            chains, first, errors = {}, {}, {}
            for name, opts in steps:
                try:
                    t_build = time.perf_counter()
                    chain = CloudChain(r.with_options(opts), seg.with_options(opts))
                    chain(data[0], scale, (w, h))  # builds (traces / compiles) on the first frame
                    first[name] = (time.perf_counter() - t_build) * 1000.0
                    chains[name] = chain
                except Exception as exc:  # e.g. bf16 on a CPU without it, no compiler for inductor
                    errors[name] = f'{type(exc).__name__}: {exc}'
                    self.log(f'ablation {name}: {errors[name]}')
            times = _round_robin(chains, data, scale, size, self.reps)
            base = None
            for name, opts in steps:
                if name in errors:
                    rows.append({'size': _sz(size), 'method': method, 'scale': scale, 'step': name,
                                 'error': errors[name]})
                    continue
                st = summarize([t for t, _ in times[name]])
                med = st['median_ms']
                base = base or med
                rows.append({'size': _sz(size), 'method': method, 'scale': scale, 'step': name,
                             'options': 'naive (plain classes)' if name == 'naive' else opts.describe(),
                             'fps': round(1000.0 / med, 2), 'speedup_vs_naive': round(base / med, 2),
                             'first_call_ms': round(first[name], 1),
                             'restore_median_ms': round(statistics.median(s['restore'] for _, s in times[name]), 2),
                             'segment_median_ms': round(statistics.median(s['segment'] for _, s in times[name]), 2),
                             **st})
                self.log(f'ablation {_sz(size)} {method} x{scale} {name}: {med:.1f} ms')
        return rows

    # ---- run everything
    def run(self) -> dict:
        """Every section at every size, then transport and control, the ratios and the targets."""
        args = self.args
        fast_opts = EXACT if args.exact else OPTIMIZED
        res = self._start(fast_opts)
        with torch.inference_mode():
            restorers = make_restorer(tuple(args.methods), tuple(args.scales), self.device, args.weights_dir)
        res['config']['weights'] = {m: {str(s): n for s, n in notes.items()} for m, (_, notes) in restorers.items()}
        fast = {m: r.with_options(fast_opts) for m, (r, _) in restorers.items()}
        learned = [m for m in args.methods if m != 'bilinear']
        chain_method = 'asr' if 'asr' in learned else (learned[0] if learned else 'bilinear')
        for size in args.sizes:
            self._measure_size(size, restorers, fast, fast_opts, chain_method)
        if not args.no_ros:
            res['transport'], res['control'] = self._ros_sections()
        res['ratios'] = ratios(res, chain_method)
        res['targets'] = targets(res, chain_method)
        res['machine']['loadavg_end'] = list(os.getloadavg())
        res['wall_s'] = round(time.perf_counter() - self.t_start, 1)
        return res

    def _start(self, fast_opts) -> dict:
        """Thread settings, then the result's header: schema, machine, configuration, empty sections."""
        args = self.args
        threads = configure_threads(args.threads)
        res = self.results
        res['schema'] = SCHEMA
        res['quick'] = bool(self.quick)
        res['started'] = time.strftime('%Y-%m-%dT%H:%M:%S%z')
        res['machine'] = machine_info(self.device, threads)
        res['paper'] = PAPER
        res['config'] = {'reps': self.reps, 'sizes': [_sz(s) for s in args.sizes], 'scales': list(args.scales),
                         'methods': list(args.methods), 'device': self.device, 'threads': threads,
                         'optimized_options': fast_opts.resolved(self.device).describe(), 'inputs': {},
                         'weights': {}}
        res['config']['imgconv'] = f'{imgconv.BACKEND}: {imgconv.BACKEND_NOTE}'
        for key in ('edge', 'imgconv', 'decode', 'restore', 'segmentation', 'tail', 'chain', 'fidelity', 'ablation'):
            res[key] = []
        return res

    def _measure_size(self, size, restorers, fast, fast_opts, chain_method) -> None:
        """The in-process sections at one frame size, appended to the result."""
        args, res = self.args, self.results
        w, h = size
        frames, src = load_frames(size, args.data_root, 2 if self.quick else 4)
        res['config']['inputs'][_sz(size)] = src
        self.log(f'{_sz(size)}: {src}')
        res['edge'] += self.edge(size, frames)
        res['imgconv'] += self.image_conversion(size, frames)
        res['decode'] += self.decode(size, frames)
        res['restore'] += self.restore(size, frames, restorers, fast, chain_method)
        dataset = 'cityscapes' if (w, h) == (2048, 1024) else 'camvid'
        seg = Segmenter('espnet', dataset=dataset, device=self.device, model_dir=args.model_dir)
        fseg = seg.with_options(fast_opts)
        res['segmentation'] += self.segmentation(size, frames, seg, fseg)
        label_maps = [seg.predict(f) for f in frames]
        res['tail'] += self.tail(size, label_maps)
        big = w * h > 1_000_000
        chain_scales = [s for s in ((4,) if big and self.quick else (2, 4)) if s in args.scales] or \
            [args.scales[0]]
        configs = [(chain_method, s) for s in chain_scales]
        if 'bilinear' in restorers:
            configs += [('bilinear', s) for s in chain_scales]
        res['chain'] += self.chain(size, frames, restorers, seg, configs, fast, fseg)
        if not (big and self.quick):
            res['fidelity'] += self.fidelity(size, frames[:2] if big else frames, restorers, seg, fast, fseg,
                                             [(chain_method, s) for s in chain_scales])
        if not self.quick and not args.no_ablation and not big:
            res['ablation'] += self.ablation(size, frames, restorers, seg,
                                             [(chain_method, s) for s in chain_scales])

    def _ros_sections(self) -> tuple[dict, dict]:
        """Transport and control (each an error entry when ROS cannot run them)."""
        try:
            # imported here: `--no-ros` runs without rclpy, and a broken ROS install loses only these two
            from runespoor_tools import bench_ros
        except ImportError as exc:
            error = {'error': f'{type(exc).__name__}: {exc}'}
            return error, dict(error)
        return bench_ros.transport(self.args, self.log), bench_ros.control(self.args, self.log)


def _round_robin(chains: dict, data: list[bytes], scale: int, size, reps: int) -> dict[str, list]:
    """{name: [(total ms, the chain's stage times), ...]} over `reps` rounds after one warm-up round; each
    round runs every chain once on the same frame, so a change in the machine's load hits them alike."""
    times: dict[str, list] = {name: [] for name in chains}
    for i in range(reps + 1):
        for name, chain in chains.items():
            t0 = time.perf_counter()
            stages = chain(data[i % len(data)], scale, tuple(size)).times_ms
            if i:  # round 0 is a warm-up
                times[name].append(((time.perf_counter() - t0) * 1000.0, stages))
    return times


def _sz(size) -> str:
    return f'{size[0]}x{size[1]}'


def _find(rows, **kw):
    for r in rows or []:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def ratios(res: dict, method: str) -> dict:
    """Cost ratios measured in this run."""
    out: dict = {}
    for size in res['config']['sizes']:
        for scale in res['config']['scales']:
            for impl in ('naive', 'optimized'):
                a = _find(res['restore'], size=size, method=method, scale=scale, impl=impl)
                b = _find(res['restore'], size=size, method='bilinear', scale=scale, impl=impl)
                if a and b and b['median_ms']:
                    key = f'{method}_over_bilinear_restore_{impl}_{size}_x{scale}'
                    out[key] = round(a['median_ms'] / b['median_ms'], 1)
            for m in (method, 'bilinear'):
                a = _find(res['chain'], size=size, method=m, scale=scale, impl='optimized')
                b = _find(res['chain'], size=size, method=m, scale=scale, impl='naive')
                if a and b:
                    out[f'optimized_over_naive_chain_{m}_{size}_x{scale}'] = round(a['median_ms'] / b['median_ms'], 3)
            a = _find(res['chain'], size=size, method=method, scale=scale, impl='optimized')
            b = _find(res['chain'], size=size, method='bilinear', scale=scale, impl='optimized')
            if a and b:
                key = f'{method}_over_bilinear_chain_optimized_{size}_x{scale}'
                out[key] = round(a['median_ms'] / b['median_ms'], 2)
    return out


def targets(res: dict, method: str) -> list[dict]:
    """The issue's targets against this run's figures (None = not measured in this run)."""
    rows = []

    def add(name, target, measured, met, note=''):
        rows.append({'target': name, 'goal': target, 'measured': measured,
                     'met': None if measured is None else bool(met), 'note': note})

    for scale, goal in ((4, 10.0), (2, 4.0)):
        c = _find(res['chain'], size='480x360', method=method, scale=scale, impl='optimized')
        fps = c['fps'] if c else None
        add(f'cloud chain 480x360 {method} x{scale}', f'>= {goal:g} frames/s', fps, fps is not None and fps >= goal)
    t = _find(res['tail'], size='480x360', downsample=4)
    tm = t['median_ms'] if t else None
    add('tail detector per frame (480x360 label map, downsample 4)', '< 0.5 ms', tm, tm is not None and tm < 0.5)
    edge = [r for r in res['edge'] if r['size'] == '2048x1024']
    worst = max((r['median_ms'] for r in edge), default=None)
    add('edge resize + encode 2048x1024, worst scale/quality (median)', '< 5 ms', worst,
        worst is not None and worst < 5.0)
    conv = _find(res.get('imgconv', []), size='2048x1024', op='image_to_rgb(rgb8)')
    add('camera Image 2048x1024 rgb8 -> RGB array without a copy (median ms)', 'a view of msg.data',
        conv['median_ms'] if conv else None, bool(conv and conv['view']), conv['backend'] if conv else '')
    ctl = res.get('control') or {}
    react = (ctl.get('reaction') or {}).get('median_ms')
    c4 = _find(res['chain'], size='480x360', method=method, scale=4, impl='optimized')
    if react is not None and c4:
        bound = c4['median_ms'] + 50.0
        add('CAC reaction (tail report -> edge sends tail knobs), median', f'<= chain period + 50 ms '
            f'= {bound:.0f} ms', react, react <= bound)
    else:
        add('CAC reaction (tail report -> edge sends tail knobs), median', '<= chain period + 50 ms', None, False,
            ctl.get('error', 'not measured'))
    return rows


# --------------------------------------------------------------------------- Markdown
def _fmt(v, nd=1):
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.{nd}f}'
    return str(v)


def _row(*cells) -> str:
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def _table(title: str, columns: str, rows: list[str]) -> list[str]:
    """A Markdown table under a bold title: `columns` is its header row; the rule matches it."""
    return ['', title, '', columns, '|' + '---|' * columns.count(' | ') + '---|'] + rows


def _md_machine(res: dict) -> list[str]:
    m = res['machine']
    return [f"Machine: {m['cpu_model']}, {m['cores_available']} cores available, torch {m['torch']} "
            f"({m['torch_threads']} threads, {m.get('torch_cpu_capability')}), device {m['device']}"
            f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}; load average at start "
            f"{', '.join(f'{x:.2f}' for x in m['loadavg_start'])}; other busy processes: "
            f"{len(m.get('other_busy_processes', []))}; {'quick' if res['quick'] else 'full'} run, "
            f"{res['config']['reps']} repetitions, {res.get('wall_s')} s."]


def _md_chain(res: dict) -> list[str]:
    rows = [_row(r['size'], r['method'], f"x{r['scale']}", r['impl'], _fmt(r['median_ms']), _fmt(r['p95_ms']),
                 _fmt(r['fps'], 2), _fmt(s['decode'], 2), _fmt(s['restore']), _fmt(s['segment']),
                 _fmt(s['tail'], 2))
            for r in res['chain'] for s in [r['stages_median_ms']]]
    return _table('**Cloud chain** (decode -> restore -> segment -> tail), per frame:',
                  '| size | method | scale | impl | median ms | p95 ms | frames/s | decode | restore | segment '
                  '| tail |', rows)


def _md_ablation(res: dict) -> list[str]:
    if not res.get('ablation'):
        return []
    rows = []
    for r in res['ablation']:
        if 'error' in r:
            rows.append(f"| {r['size']} | {r['method']} | x{r['scale']} | {r['step']} | {r['error']} | | | | | |")
            continue
        rows.append(_row(r['size'], r['method'], f"x{r['scale']}", r['step'], _fmt(r['median_ms']),
                         _fmt(r['p95_ms']), _fmt(r['restore_median_ms']), _fmt(r['segment_median_ms']),
                         _fmt(r['speedup_vs_naive'], 2), _fmt(r['first_call_ms'], 0)))
    return _table('**What each optimization bought** (cumulative, whole chain, steps measured round-robin):',
                  '| size | method | scale | step | median ms | p95 ms | restore ms | segment ms | speed-up vs naive | '
                  'first call ms |', rows)


def _md_fidelity(res: dict) -> list[str]:
    rows = [_row(r['size'], r['method'], f"x{r['scale']}", r['frames'], f"{r['label_agreement_min']:.4f}",
                 _fmt(r.get('noise_floor_agreement_min'), 4), r['same_tail_verdict'],
                 _fmt(r['restored_psnr_db_min'], 1), r['within_tolerance'])
            for r in res['fidelity']]
    return _table('**Fidelity of the optimized chain** (against the naive chain, same frames):',
                  '| size | method | scale | frames | label agreement (min) | model noise floor (min) '
                  '| same tail verdict | restored PSNR vs naive (min, dB) | within tolerance |', rows)


def _md_components(res: dict) -> list[str]:
    """Restoration, segmentation, tail detector, edge encode and JPEG decode, each on its own."""
    restore = [_row(r['size'], r['method'], f"x{r['scale']}", r['lr_size'], r['impl'], _fmt(r['median_ms']),
                    _fmt(r['p95_ms']), r['weights']) for r in res['restore']]
    segment = [_row(r['size'], r['dataset'], r['impl'], _fmt(r['median_ms']), _fmt(r['p95_ms']))
               for r in res['segmentation']]
    tail = [_row(r['size'], r['downsample'], r['analyzed_size'], _fmt(r['median_ms'], 3), _fmt(r['p95_ms'], 3))
            for r in res['tail']]
    edge = [_row(r['size'], f"x{r['scale']}", r['quality'], r['bytes'], _fmt(r['median_ms'], 2),
                 _fmt(r['p95_ms'], 2)) for r in res['edge']]
    decode = [_row(r['size'], f"x{r['scale']}", r['impl'], _fmt(r['median_ms'], 3), _fmt(r['p95_ms'], 3))
              for r in res['decode']]
    conv = [_row(r['size'], r['op'], r['backend'], 'yes' if r['view'] else 'no', _fmt(r['median_ms'], 3),
                 _fmt(r['p95_ms'], 3)) for r in res.get('imgconv', [])]
    return (_table('**Restoration** (LR JPEG q75 decoded -> source size), per frame:',
                   '| size | method | scale | LR size | impl | median ms | p95 ms | weights |', restore)
            + _table('**Segmentation** (ESPNet p=2 q=8, frame -> labels):',
                     '| size | weights | impl | median ms | p95 ms |', segment)
            + _table('**Tail detector**:', '| size | downsample | analyzed | median ms | p95 ms |', tail)
            + _table('**Edge** (area downsample + JPEG encode):',
                     '| size | scale | quality | bytes | median ms | p95 ms |', edge)
            + _table('**Image conversion** (runespoor_common/imgconv.py; view = the array shares msg.data, no copy):',
                     '| size | conversion | route | view | median ms | p95 ms |', conv)
            + _table('**JPEG decode** (q75):', '| size | scale | impl | median ms | p95 ms |', decode))


def _md_transport(res: dict) -> list[str]:
    tr = res.get('transport')
    if isinstance(tr, dict) and tr.get('rows'):
        rows = [_row(r['message'], r['payload'], r['bytes'], r['qos'], _fmt(r['one_way']['median_ms'], 2),
                     _fmt(r['one_way']['p95_ms'], 2), _fmt(r['round_trip']['median_ms'], 2), r['lost'])
                for r in tr['rows']]
        return _table(f"**Transport** between two processes over DDS ({tr.get('rmw', '')}, loopback, one-way = pong "
                      "arrival stamp - send stamp):",
                      '| message | payload | bytes | QoS | one-way median ms | p95 ms | round trip median ms | lost |',
                      rows)
    if isinstance(tr, dict) and tr.get('error'):
        return ['', f"Transport: not measured ({tr['error']})."]
    return []


def _md_control(res: dict) -> list[str]:
    ctl = res.get('control')
    if not isinstance(ctl, dict):
        return []
    if ctl.get('reaction'):
        rc, kn, ap = ctl['reaction'], ctl.get('controller') or {}, ctl.get('edge_apply') or {}
        rows = [_row('tail report -> controller publishes tail knobs', _fmt(kn.get('median_ms'), 1),
                     _fmt(kn.get('p95_ms'), 1)),
                _row('tail knobs -> first uplink frame with them', _fmt(ap.get('median_ms'), 1),
                     _fmt(ap.get('p95_ms'), 1)),
                _row('**tail report -> edge sends tail knobs**', _fmt(rc['median_ms'], 1), _fmt(rc['p95_ms'], 1))]
        return _table(f"**CAC reaction** through the real nodes ({ctl.get('nodes')}; camera at "
                      f"{ctl.get('camera_hz')} Hz; {rc['n']} switches):", '| span | median ms | p95 ms |', rows)
    if ctl.get('error'):
        return ['', f"CAC reaction: not measured ({ctl['error']})."]
    return []


def _md_summary(res: dict) -> list[str]:
    """The run's ratios and the targets, met or not."""
    met = {None: '-', True: 'yes', False: 'no'}
    return (_table('**Ratios** (same run):', '| ratio | value |',
                   [_row(k, v) for k, v in res.get('ratios', {}).items()])
            + _table('**Targets**:', '| target | goal | measured | met | note |',
                     [_row(t['target'], t['goal'], _fmt(t['measured'], 2), met[t['met']], t.get('note', ''))
                      for t in res.get('targets', [])]))


def render_markdown(res: dict) -> str:
    """Markdown tables of a bench.json (used for docs/performance.md)."""
    sections = (_md_machine, _md_chain, _md_ablation, _md_fidelity, _md_components, _md_transport, _md_control,
                _md_summary)
    return '\n'.join(line for section in sections for line in section(res)) + '\n'


# --------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--quick', action='store_true', help='fewer repetitions and configurations (< 2 min on 2 cores)')
    p.add_argument('--device', default='cpu', help='torch device: cpu or cuda[:N]')
    p.add_argument('--threads', type=int, default=None,
                   help='intra-op threads for torch/OpenCV (default: the cores not already loaded, at least 1)')
    p.add_argument('--out', default='bench.json', help='JSON file to write')
    p.add_argument('--reps', type=int, default=None, help='timed repetitions per measurement (default 3 quick, 15)')
    p.add_argument('--sizes', type=_parse_size, nargs='+', default=list(DEFAULT_SIZES), metavar='WxH',
                   help='frame sizes (default 480x360 2048x1024)')
    p.add_argument('--scales', type=int, nargs='+', default=list(SR_SCALES), help='restoration scales')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS, help='restoration methods')
    p.add_argument('--exact', action='store_true', help='optimized chain in fp32 only (no reduced precision)')
    p.add_argument('--no-ros', action='store_true', help='skip the transport and control measurements')
    p.add_argument('--no-ablation', action='store_true', help='skip the per-optimization ablation')
    p.add_argument('--no-compile', action='store_true',
                   help='leave the torch.compile (inductor) step out of the full run\'s ablation')
    p.add_argument('--data-root', default=None, help='data sets folder (default $RUNESPOOR_DATA or ../shared/data)')
    p.add_argument('--model-dir', default=None,
                   help='third-party weights (default $RUNESPOOR_MODELS or ../shared/models)')
    p.add_argument('--weights-dir', default=None, help="the project's trained SR/ASR weights (default models/)")
    p.add_argument('--transport-reps', type=int, default=None, help='messages per transport measurement')
    p.add_argument('--control-reps', type=int, default=None, help='tail switches in the control measurement')
    p.add_argument('--domain-id', type=int, default=None,
                   help='ROS domain for the transport/control runs (default: a random one of its own)')
    p.add_argument('--markdown', metavar='BENCH_JSON', default=None,
                   help='print the Markdown tables of an existing bench.json and exit')
    p.add_argument('--silent', action='store_true', help='no progress lines on stderr')


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        try:
            res = json.loads(Path(args.markdown).read_text())
        except (OSError, ValueError) as exc:
            print(f'runespoor bench: cannot read {args.markdown}: {exc}', file=sys.stderr)
            return 2
        print(render_markdown(res), end='')
        return 0
    if args.device.startswith('cuda'):
        if not torch.cuda.is_available():
            print(f'runespoor bench: --device {args.device} but torch sees no CUDA device '
                  f'(torch {torch.__version__})', file=sys.stderr)
            return 2
    elif args.device != 'cpu':
        print(f'runespoor bench: --device must be cpu or cuda[:N], got {args.device!r}', file=sys.stderr)
        return 2
    bad = [s for s in args.scales if s not in SR_SCALES]
    if bad:
        print(f'runespoor bench: scales {bad} not in {SR_SCALES}', file=sys.stderr)
        return 2
    args.scales = tuple(sorted(set(args.scales)))
    args.scales_all = tuple(sorted({1, *args.scales}))
    args.sizes = [tuple(s) for s in args.sizes]
    res = Bench(args).run()
    out = write_json_atomic(res, args.out, indent=1, default=str)
    if not args.silent:
        print(render_markdown(res), end='')
        print(f'[bench] wrote {out} in {res["wall_s"]} s', file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='runespoor bench', description=__doc__.split('\n')[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

"""`runespoor train sr|asr|cloudseg|export|table`: base SR, analytics-aware SR (ASR) and CloudSeg training.

- sr:       L1 on small HR patches (64 px default), initialised from the published multi-scale CARN-M.
- asr:      starts from the base SR model; alpha * L1 + beta * CE over detailed regions (journal Eq. 3), the
            detailed regions being the pixels of small connected regions of the label map
            (:func:`runespoor_cloud.tail.small_region_mask`, the tail detector's definition); large patches.
- cloudseg: same start; alpha * L1 + beta * KL(seg(hr) || seg(sr)) over the whole patch, no labels (Eq. 2).
- export:   write a training checkpoint as small fp16 weights for the restorer (models/<dataset>/...).
- table:    the val table (bilinear / sr / asr / cloudseg / HR per scale) as JSON and Markdown.

The low-resolution inputs are the edge's own round trip (runespoor_edge.codec.edge_roundtrip) of whole frames.
Checkpoints (`model_args`, CPU `state_dict`, optimizer, step, metrics) are written to a temp file and renamed;
`last.pt` and `best.pt` are kept in --out, and --resume continues from `last.pt`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from runespoor_cloud.chain import CloudChain
from runespoor_cloud.frameset import FrameSet, random_patch
from runespoor_cloud.losses import ASRLoss, CloudSegLoss, L1Loss
from runespoor_cloud.metrics import class_iou, confusion_matrix, miou, psnr, ssim, tail_class_set, tail_miou
from runespoor_cloud.models import (ModelFileError, atomic_save, build, load_state_strict, read_checkpoint,
                                    save_checkpoint)
from runespoor_cloud.models.carn import init_from_carn_m
from runespoor_cloud.restore import Restorer, weight_path
from runespoor_cloud.segmentation import Segmenter
from runespoor_cloud.tail import small_region_mask
from runespoor_common import paths
from runespoor_common.datasets import list_samples

METHODS = ('sr', 'asr', 'cloudseg')
DEFAULT_OUT_ROOT = Path(os.environ.get('RUNESPOOR_TRAIN_DIR', '/tmp/runespoor_train'))


# --------------------------------------------------------------------------------------------------------
# data


class TrainFrames:
    """Train split in memory: HR, edge round-trip LR, labels and detailed-region masks (for asr)."""

    def __init__(self, dataset: str, root, split: str, scale: int, quality: int, need_masks: bool,
                 small_region_area: float, limit: int | None = None):
        self.frames = FrameSet(dataset, root, split, scale, quality, limit=limit, with_labels=need_masks)
        self.masks = []
        if need_masks:
            for lab in self.frames.labels:
                if lab is None:
                    raise ValueError('ASR training needs labelled frames; a frame of the split has no label')
                self.masks.append(small_region_mask(lab, small_region_area, ignore=255, downsample=1))

    def __len__(self):
        return len(self.frames)

    def batch(self, rng: np.random.Generator, batch_size: int, hr_patch: int):
        fr = self.frames
        lrs, hrs, labs, masks = [], [], [], []
        for _ in range(batch_size):
            i = int(rng.integers(len(fr)))
            extras = (fr.labels[i], self.masks[i]) if self.masks else ()
            out = random_patch(fr.lr[i], fr.hr[i], fr.scale, hr_patch, rng, extras=extras)
            lrs.append(out[0])
            hrs.append(out[1])
            if self.masks:
                labs.append(out[2])
                masks.append(out[3])
        to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255.0)  # noqa: E731
        lab_t = torch.from_numpy(np.stack(labs)).long() if labs else None
        mask_t = torch.from_numpy(np.stack(masks)) if masks else None
        return to_t(lrs), to_t(hrs), lab_t, mask_t


# --------------------------------------------------------------------------------------------------------
# evaluation


def evaluate(restorer: Restorer | None, frames, segmenter=None, with_ssim: bool = True, progress: bool = False
             ) -> dict:
    """Every LR frame of a FrameSet through the cloud chain (runespoor_cloud/chain.py: restore with
    `restorer`, segment with `segmenter`), scored: mean PSNR/SSIM against HR and, with a segmenter, the
    confusion matrix / mIoU of its labels. ``restorer=None`` scores HR itself (the segmentation upper
    bound)."""
    chain = CloudChain(restorer, segmenter, tail=None)
    k = segmenter.num_classes if segmenter is not None else 0
    cm = np.zeros((k, k), np.int64)
    ps, ss = [], []
    it = range(len(frames))
    if progress:
        it = tqdm(it, desc='eval', leave=False, mininterval=5)
    for i in it:
        hr = frames.hr[i]
        size = (hr.shape[1], hr.shape[0])
        res = chain.process(hr, 1, size) if restorer is None else chain.process(frames.lr[i], frames.scale, size)
        if restorer is not None:
            ps.append(psnr(res.restored, hr))
            if with_ssim:
                ss.append(ssim(res.restored, hr))
        if segmenter is not None and frames.labels[i] is not None:
            cm += confusion_matrix(res.labels, frames.labels[i], k)
    res = {'frames': len(frames), 'cm': cm}
    if ps:
        res['psnr'] = float(np.mean(ps))
    if ss:
        res['ssim'] = float(np.mean(ss))
    if segmenter is not None:
        res['miou'] = miou(cm)
    return res


# --------------------------------------------------------------------------------------------------------
# model set-up


def build_sr_model(arch: str, scale: int, init: str | None, model_dir=None):
    """Build `arch` for `scale`; `init` = 'carn_m' (the published CARN-M), a Runespoor checkpoint, or none."""
    model_args = {'scale': int(scale)}
    model = build(arch, **model_args)
    note = 'random initialisation'
    if init and init.lower() != 'none':
        if init == 'carn_m':
            init = str(paths.model_dir(model_dir) / 'carn' / 'carn_m.pth')
        raw = torch.load(init, map_location='cpu', weights_only=True) if Path(init).is_file() else None
        if raw is None:
            raise ModelFileError(f'{init}: initialisation file is missing')
        if isinstance(raw, dict) and 'state_dict' in raw and 'arch' in raw:
            ckpt = read_checkpoint(init)
            if ckpt['arch'] != arch or int(ckpt['model_args'].get('scale', scale)) != int(scale):
                raise ModelFileError(f'{init}: is {ckpt["arch"]} x{ckpt["model_args"].get("scale")}, '
                                     f'need {arch} x{scale}')
            model_args = dict(ckpt['model_args'])
            model = build(arch, **model_args)
            load_state_strict(model, ckpt['state_dict'], init)
            note = f'from {init}'
        else:
            r = init_from_carn_m(model, init)
            note = f'from {init} ({len(r["loaded"])} tensors; new: {r["skipped"] or "none"})'
    return model, model_args, note


def default_init(method: str, dataset: str, scale: int) -> str:
    if method == 'sr':
        return 'carn_m'
    return str(paths.weights_dir() / dataset / f'sr_x{scale}.pt')


def make_loss(method: str, segmenter, alpha: float, beta: float, cloudseg_kind: str = 'kl'):
    if method == 'sr':
        return L1Loss()
    if method == 'asr':
        return ASRLoss(segmenter, alpha, beta)
    return CloudSegLoss(segmenter, alpha, beta, kind=cloudseg_kind)


def train_one_step(model, loss_fn, optimizer, batch) -> tuple[float, dict]:
    lr, hr, labels, mask = batch
    model.train()
    optimizer.zero_grad(set_to_none=True)
    sr = model(lr)
    loss, parts = loss_fn(sr, hr, labels, mask)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.detach().item(), parts


def train_one_epoch(model, loss_fn, optimizer, scheduler, data: TrainFrames, rng, args, step: int,
                    n_steps: int, bar=None) -> tuple[int, float]:
    """Run `n_steps` optimisation steps (an 'epoch' here is one validation interval). Returns (step, mean loss)."""
    total = 0.0
    for _ in range(n_steps):
        loss, parts = train_one_step(model, loss_fn, optimizer, data.batch(rng, args.batch_size, args.patch))
        scheduler.step()
        step += 1
        total += loss
        if bar is not None:
            bar.update(1)
            bar.set_postfix(refresh=False, loss=f'{loss:.4f}', **{k: f'{v:.4f}' for k, v in parts.items()})
    return step, total / max(1, n_steps)


# --------------------------------------------------------------------------------------------------------
# checkpoints


def save_training_state(path: Path, model, model_args, optimizer, scheduler, step, args, best, history,
                        wall_s, rng):
    save_checkpoint(path, model, args.arch, model_args, step=step, optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), best=best, history=history, wall_s=wall_s,
                    rng=rng.bit_generator.state, config=_config(args))


def _config(args) -> dict:
    keys = ('method', 'dataset', 'scale', 'arch', 'steps', 'batch_size', 'patch', 'jpeg_quality', 'lr',
            'alpha', 'beta', 'small_region_area', 'init', 'train_split', 'train_limit', 'cloudseg_loss', 'seed')
    return {k: (str(getattr(args, k)) if isinstance(getattr(args, k, None), Path) else getattr(args, k, None))
            for k in keys}


def export_weights(ckpt_path, dest, extra: dict | None = None) -> Path:
    """Write a training checkpoint's model as fp16 weights (+ provenance) for the restorer."""
    ckpt = read_checkpoint(ckpt_path)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in ckpt['state_dict'].items()}
    out = {'arch': ckpt['arch'], 'model_args': ckpt['model_args'], 'state_dict': sd,
           'step': ckpt.get('step'), 'wall_s': ckpt.get('wall_s'), 'val': ckpt.get('val'),
           'config': ckpt.get('config'), 'hardware': ckpt.get('hardware')}
    out.update(extra or {})
    return atomic_save(out, dest)


def _hardware(threads: int) -> str:
    return f'{platform.machine()} CPU, {threads} torch thread(s), torch {torch.__version__}'


# --------------------------------------------------------------------------------------------------------
# main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('method', choices=METHODS + ('export', 'table'),
                        help='what to train (sr, asr, cloudseg), or export a checkpoint, or print the val table')
    parser.add_argument('--dataset', default='camvid', choices=('camvid', 'cityscapes'))
    parser.add_argument('--data-root', default=None, help='data root (default $RUNESPOOR_DATA or ../shared/data)')
    parser.add_argument('--model-dir', default=None, help='third-party weights (ESPNet, CARN-M)')
    parser.add_argument('--scale', type=int, default=4, choices=(2, 3, 4, 6, 8))
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 4, 6, 8], help='table: scales')
    parser.add_argument('--arch', default='carn_m', choices=('carn_m', 'carn'))
    parser.add_argument('--steps', type=int, default=1000, help='total optimisation steps')
    parser.add_argument('--batch-size', type=int, default=None, help='default 16 (sr), 4 (asr/cloudseg)')
    parser.add_argument('--patch', type=int, default=None,
                        help='HR patch size in px (default 64 for sr, 192 for asr/cloudseg; 0 = whole frame)')
    parser.add_argument('--jpeg-quality', type=int, default=90)
    parser.add_argument('--lr', type=float, default=None, help='Adam learning rate (default 2e-4 sr, 5e-5 asr)')
    parser.add_argument('--alpha', type=float, default=0.95, help='weight of the L1 reconstruction loss')
    parser.add_argument('--beta', type=float, default=0.05, help='weight of the analytics loss')
    parser.add_argument('--small-region-area', type=float, default=0.01,
                        help='a connected label region is "small" (detailed) below this fraction of the frame')
    parser.add_argument('--cloudseg-loss', default='kl', choices=('kl', 'ce'))
    parser.add_argument('--init', default=None,
                        help="initial weights: 'carn_m' (sr default), a checkpoint (asr/cloudseg default: "
                             "models/<dataset>/sr_x<scale>.pt), or 'none'")
    parser.add_argument('--out', type=Path, default=None,
                        help='checkpoint folder (default /tmp/runespoor_train/<dataset>_<method>_x<scale>)')
    parser.add_argument('--resume', action='store_true', help='continue from <out>/last.pt when present')
    parser.add_argument('--export', type=Path, default=None,
                        help='export the best model here at the end (default models/<dataset>/<method>_x<scale>.pt)')
    parser.add_argument('--no-export', action='store_true')
    parser.add_argument('--ckpt', type=Path, default=None, help='export: checkpoint to export (default <out>/best.pt)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides)')
    parser.add_argument('--val-every', type=int, default=250, help='validate every N steps (and at the end)')
    parser.add_argument('--val-limit', type=int, default=20, help='validate on every k-th val frame, N frames')
    parser.add_argument('--train-split', default='train')
    parser.add_argument('--train-limit', type=int, default=None, help='use only the first N train frames')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--weights-dir', type=Path, default=None, help='table: the project weights folder')
    parser.add_argument('--json', type=Path, default=None, help='table: also write the results here')
    parser.add_argument('--methods', nargs='+', default=['sr', 'asr', 'cloudseg'],
                        help='table: model methods to score (HR and bilinear are always scored)')


def _defaults(args) -> None:
    big = args.method in ('asr', 'cloudseg')
    if args.batch_size is None:
        args.batch_size = 4 if big else 16
    if args.patch is None:
        args.patch = 192 if big else 64
    if args.lr is None:
        args.lr = 5e-5 if big else 2e-4
    if args.out is None and args.method in METHODS:
        args.out = DEFAULT_OUT_ROOT / f'{args.dataset}_{args.method}_x{args.scale}'
    if args.export is None and args.method in METHODS:
        args.export = paths.weights_dir() / args.dataset / f'{args.method}_x{args.scale}.pt'


def _val_frames(args, scale: int):
    n = len(list_samples(args.dataset, paths.data_root(args.data_root), 'val'))
    every = max(1, n // args.val_limit) if args.val_limit else 1
    return FrameSet(args.dataset, paths.data_root(args.data_root), 'val', scale, args.jpeg_quality,
                    limit=args.val_limit or None, every=every)


class Training:
    """One `runespoor train sr|asr|cloudseg` run, in named steps: set up (data, model, optimiser, resume),
    validate the start, train with validation every --val-every steps and checkpoints, export the best."""

    def __init__(self, args):
        self.args = args
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        self.last, self.best_path = args.out / 'last.pt', args.out / 'best.pt'
        self.segmenter = Segmenter('espnet', dataset=args.dataset, device=args.device, model_dir=args.model_dir)
        self.data, self.val = self._load_frames()
        self.model, self.model_args = self._build_model()
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=args.lr)
        # cosine decay to 10 % of the learning rate over the run
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, args.steps)))))
        self.loss_fn = make_loss(args.method, self.segmenter, args.alpha, args.beta, args.cloudseg_loss)
        self.step, self.wall, self.best, self.history = 0, 0.0, None, []
        self._resume()
        self.key = 'psnr' if args.method == 'sr' else 'miou'
        # the model being trained, served by a Restorer (reference path) as the restorer node would serve it
        self.restorer = Restorer({args.scale: args.method}, device=args.device, models={args.scale: self.model})

    def _load_frames(self) -> tuple[TrainFrames, FrameSet]:
        args = self.args
        print(f'[train {args.method} x{args.scale}] loading {args.dataset} {args.train_split} + val frames '
              f'(JPEG q{args.jpeg_quality})', flush=True)
        data = TrainFrames(args.dataset, paths.data_root(args.data_root), args.train_split, args.scale,
                           args.jpeg_quality, need_masks=args.method == 'asr',
                           small_region_area=args.small_region_area, limit=args.train_limit)
        val = _val_frames(args, args.scale)
        if args.method == 'asr':
            frac = float(np.mean([m.mean() for m in data.masks]))
            print(f'  detailed regions: {100 * frac:.1f}% of train pixels (small_region_area={args.small_region_area})')
        return data, val

    def _build_model(self):
        args = self.args
        init = args.init or default_init(args.method, args.dataset, args.scale)
        model, model_args, note = build_sr_model(args.arch, args.scale, init, args.model_dir)
        print(f'  model {args.arch} x{args.scale}: {sum(p.numel() for p in model.parameters())} params, {note}')
        model.to(args.device)
        return model, model_args

    def _resume(self) -> None:
        """--resume: model, optimiser, scheduler, step, history and RNG from last.pt when it exists."""
        if not self.args.resume:
            return
        if not self.last.is_file():
            print(f'  --resume: no {self.last} yet, starting fresh')
            return
        ck = read_checkpoint(self.last)
        load_state_strict(self.model, ck['state_dict'], self.last)
        self.optimizer.load_state_dict(ck['optimizer'])
        self.scheduler.load_state_dict(ck['scheduler'])
        self.step, self.wall = ck['step'], ck.get('wall_s', 0.0)
        self.best, self.history = ck.get('best'), ck.get('history', [])
        if ck.get('rng'):
            self.rng.bit_generator.state = ck['rng']
        print(f'  resumed from {self.last} at step {self.step}')

    def save(self, path: Path, step: int, wall: float) -> None:
        save_training_state(path, self.model, self.model_args, self.optimizer, self.scheduler, step, self.args,
                            self.best, self.history, wall, self.rng)

    def validate(self, step_now: int) -> dict:
        self.model.eval()
        r = evaluate(self.restorer, self.val, self.segmenter)
        r.pop('cm')
        r['step'] = step_now
        return r

    def validate_start(self) -> None:
        """Step 0: bilinear and the initial model on val; the initial model is the first best.pt."""
        args = self.args
        base = evaluate(Restorer({args.scale: 'bilinear'}, device=args.device), self.val, self.segmenter)
        start = self.validate(0)
        print(f'  val ({len(self.val)} frames) bilinear: psnr {base["psnr"]:.2f} ssim {base["ssim"]:.4f} '
              f'miou {base["miou"]:.4f} | init: psnr {start["psnr"]:.2f} ssim {start["ssim"]:.4f} '
              f'miou {start["miou"]:.4f}', flush=True)
        self.history.append({'step': 0, 'bilinear': {k: base[k] for k in ('psnr', 'ssim', 'miou')}, **start})
        self.best = dict(start)
        self.save(self.best_path, 0, 0.0)

    def train(self) -> None:
        """Up to --steps, validating every --val-every steps; best.pt when val improves, last.pt always."""
        args, key = self.args, self.key
        bar = tqdm(total=args.steps, initial=self.step, desc=f'{args.method} x{args.scale}', dynamic_ncols=True,
                   mininterval=1 if sys.stderr.isatty() else 30)
        while self.step < args.steps:
            t0 = time.time()
            n = min(args.val_every, args.steps - self.step)
            self.step, mean_loss = train_one_epoch(self.model, self.loss_fn, self.optimizer, self.scheduler,
                                                   self.data, self.rng, args, self.step, n, bar)
            self.wall += time.time() - t0
            r = self.validate(self.step)
            r['train_loss'] = mean_loss
            r['wall_s'] = self.wall
            self.history.append(r)
            improved = self.best is None or r[key] > self.best[key]
            bar.write(f'  step {self.step}: loss {mean_loss:.4f} | val psnr {r["psnr"]:.2f} ssim {r["ssim"]:.4f} '
                      f'miou {r["miou"]:.4f}{"  (best)" if improved else ""} | {self.wall / 60:.1f} min')
            if improved:
                self.best = dict(r)
                self.save(self.best_path, self.step, self.wall)
            self.save(self.last, self.step, self.wall)
        bar.close()

    def export(self) -> None:
        """The best checkpoint as the restorer's fp16 weights (--export), with its provenance."""
        args = self.args
        dest = export_weights(self.best_path, args.export, {
            'method': args.method, 'dataset': args.dataset, 'scale': args.scale, 'val': self.best,
            'total_steps': self.step, 'total_wall_s': self.wall, 'hardware': _hardware(torch.get_num_threads()),
            'train_data': f'{args.dataset} {args.train_split} ({len(self.data)} frames), JPEG q{args.jpeg_quality}'})
        print(f'  exported best (step {self.best["step"]}, {self.key} {self.best[self.key]:.4f}) to {dest}')


def run_training(args) -> int:
    _defaults(args)
    training = Training(args)
    if training.step == 0:
        training.validate_start()
    training.train()
    if not args.no_export:
        training.export()
    return 0


def run_export(args) -> int:
    if args.ckpt is None and args.out is None:
        raise SystemExit('runespoor train export: pass --ckpt FILE or --out FOLDER (its best.pt is exported)')
    src = args.ckpt or args.out / 'best.pt'
    ck = read_checkpoint(src)
    cfg = ck.get('config') or {}
    method, scale = cfg.get('method'), int(ck['model_args'].get('scale', args.scale))
    if method not in METHODS:
        raise SystemExit(f'{src}: checkpoint does not record its training method')
    dest = args.export or paths.weights_dir() / args.dataset / f'{method}_x{scale}.pt'
    threads = args.threads or torch.get_num_threads()
    dest = export_weights(src, dest, {
        'method': method, 'dataset': args.dataset, 'scale': scale,
        'val': ck.get('best'), 'total_steps': ck.get('step'), 'total_wall_s': ck.get('wall_s'),
        'hardware': _hardware(threads), 'train_data': f'{args.dataset} {cfg.get("train_split", "train")}, '
                                                      f'JPEG q{cfg.get("jpeg_quality")}'})
    print(f'exported {src} (step {ck.get("step")}) to {dest}')
    return 0


# --------------------------------------------------------------------------------------------------------
# the val table


def run_table(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    weights_dir = args.weights_dir or paths.weights_dir()
    seg = Segmenter('espnet', dataset=args.dataset, device=args.device, model_dir=args.model_dir)
    args.val_limit = args.val_limit or 0
    rows = []
    hr_res = None
    for scale in args.scales:
        val = _val_frames(args, scale)
        if hr_res is None:
            hr_res = evaluate(None, val, seg)
            hr_iou = class_iou(hr_res['cm'])
        res = {'HR': hr_res}
        res['bilinear'] = evaluate(Restorer({scale: 'bilinear'}, device=args.device), val, seg)
        for m in args.methods:
            if weight_path(weights_dir, args.dataset, m, scale).is_file():
                r = Restorer({scale: m}, weights_dir, args.dataset, args.device)
                res[m] = evaluate(r, val, seg, progress=True)
        tail = tail_class_set(class_iou(res['bilinear']['cm']), hr_iou)  # docs/design.md §2
        hr_tail = tail_miou(hr_iou, tail)
        for m, r in res.items():
            iou = class_iou(r['cm'])
            t = tail_miou(iou, tail)
            rows.append({'method': m, 'scale': scale, 'miou': r['miou'], 'tail_miou': t,
                         'tail_miou_norm': t / hr_tail, 'psnr': r.get('psnr'), 'ssim': r.get('ssim'),
                         'kbytes_per_frame': float(np.mean(val.nbytes)) / 1000 if m != 'HR' else None,
                         'tail_classes': [seg.info.class_names[i] for i in tail], 'frames': r['frames'],
                         'class_iou': [None if np.isnan(v) else float(v) for v in iou]})
            print(f'x{scale} {m:9s} miou {100 * r["miou"]:.2f} tail {100 * t:.2f} '
                  f'psnr {r.get("psnr", float("nan")):.2f} ssim {r.get("ssim", float("nan")):.4f}', flush=True)
    print()
    print('| scale | method | mIoU % | tail mIoU % | tail / HR | PSNR dB | SSIM | kB/frame |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        f = lambda v, fmt: '-' if v is None else fmt.format(v)  # noqa: E731
        print(f'| x{r["scale"]} | {r["method"]} | {100 * r["miou"]:.2f} | {100 * r["tail_miou"]:.2f} | '
              f'{r["tail_miou_norm"]:.3f} | {f(r["psnr"], "{:.2f}")} | {f(r["ssim"], "{:.4f}")} | '
              f'{f(r["kbytes_per_frame"], "{:.1f}")} |')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.method == 'table':
        return run_table(args)
    if args.method == 'export':
        return run_export(args)
    return run_training(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='runespoor train')
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

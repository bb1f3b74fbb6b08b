"""`runespoor profile`: tail-aware offline profiling (docs/design.md §1) -> the CAC profile YAML.

1. Every config (scale in {1,2,4,6,8} x JPEG quality in {40,...,90}) runs over the profiling split (train)
   through the exact edge encoding, restoration (per scale: ``asr`` where its weights exist, else ``sr``,
   else ``bilinear``; recorded in the output) and the frozen segmentation; per-frame confusion matrices,
   bytes and small-region ratios are cached (see :mod:`runespoor_tools.evaluate`).
2. Tail frames = the worst 10 % by frame mIoU at the reference config (default x4 q90).
3. Per bandwidth level (kbit/s at a frame rate -> a byte budget per frame): the *standard* config is the
   best mIoU on the non-tail frames among configs whose mean bytes on those frames fit the budget; the
   *tail* config is the best mIoU on the tail frames among configs at the standard resolution or finer
   whose mean bytes on the tail frames fit the same budget (mIoU = confusion matrix accumulated over the
   frame subset; ties -> fewer bytes). Where nothing fits, the smallest config is taken and flagged.
4. The tail threshold: linear regression of the small-region ratio on frame mIoU at the reference config
   (:func:`runespoor_cloud.metrics.fit_tail_threshold`). With ``--tail-rule fit`` (default) the sign of
   the slope chooses the rule: 'below' (the paper's: tail frames have few small regions) or 'above' (they
   have many, as on CamVid). The same fit is made per scale at the reference quality (tail = that config's
   worst 10 %), since restored label maps of coarser scales carry more small regions: `scale_thresholds`.
   Recall and precision are reported on the validation split at every scale (reference quality), tail =
   its worst 10 % frames, with each scale's own threshold.
5. Writes the controller's profile YAML (default ``config/profiles/<dataset>.yaml``) with the figures that
   justify each choice as comments, and optionally a JSON with everything (for `runespoor report`).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from runespoor_cloud import metrics
from runespoor_cloud.models import ModelFileError
from runespoor_common import paths
from runespoor_common.datasets import DatasetError
from runespoor_common.fileio import write_text_atomic
from runespoor_edge.codec import QUALITY_RANGE, VALID_SCALES
from runespoor_tools.evaluate import (Config, EvalError, add_common_arguments, command_line, parse_int_list,
                                      select_samples, setup_runner, write_json_atomic)

DEFAULT_SCALES = (1, 2, 4, 6, 8)
DEFAULT_QUALITIES = (40, 50, 60, 70, 80, 90)
DEFAULT_LEVELS_KBPS = (50, 100, 150, 250, 400, 700, 1200, 2000)


@dataclass(frozen=True)
class ConfigScore:
    """One profiled config: mean kB/frame and accumulated mIoU on the non-tail and the tail frames."""
    scale: int
    quality: int
    kbytes_std: float
    kbytes_tail: float
    acc_std: float
    acc_tail: float
    kbytes: float = float('nan')      # mean over all frames
    acc_all: float = float('nan')


@dataclass(frozen=True)
class LevelChoice:
    kbps: float
    budget_kbytes: float
    standard: ConfigScore
    tail: ConfigScore
    standard_fits: bool
    tail_fits: bool


def budget_kbytes(kbps: float, frame_rate: float) -> float:
    """kB per frame that a link of `kbps` kbit/s carries at `frame_rate` frames/s."""
    if kbps <= 0 or frame_rate <= 0:
        raise ValueError(f'bandwidth and frame rate must be > 0, got {kbps} kbit/s at {frame_rate} frames/s')
    return kbps / 8.0 / frame_rate


def _best(table: list[ConfigScore], budget: float, acc, size) -> tuple[ConfigScore, bool]:
    fits = [c for c in table if size(c) <= budget + 1e-12 and not math.isnan(acc(c))]
    if not fits:   # nothing fits: the smallest config (flagged)
        return min(table, key=lambda c: (size(c), -(acc(c) if not math.isnan(acc(c)) else -1))), False
    return max(fits, key=lambda c: (acc(c), -size(c), -c.scale)), True


def select_levels(table: list[ConfigScore], levels_kbps, frame_rate: float) -> list[LevelChoice]:
    """Standard and tail config per bandwidth level (see the module docstring)."""
    if not table:
        raise ValueError('empty profile table')
    out = []
    for kbps in levels_kbps:
        b = budget_kbytes(float(kbps), frame_rate)
        std, std_ok = _best(table, b, lambda c: c.acc_std, lambda c: c.kbytes_std)
        # the tail config is never coarser than the standard one (the paper: tail frames need resolution)
        finer = [c for c in table if c.scale <= std.scale]
        tail, tail_ok = _best(finer, b, lambda c: c.acc_tail, lambda c: c.kbytes_tail)
        out.append(LevelChoice(float(kbps), b, std, tail, std_ok, tail_ok))
    return out


def score_table(cms: dict[tuple[int, int], np.ndarray], nbytes: dict[tuple[int, int], np.ndarray],
                tail_mask: np.ndarray) -> list[ConfigScore]:
    """ConfigScores from per-frame confusion matrices (N x K x K) and bytes (N) per (scale, quality)."""
    t = np.asarray(tail_mask, bool)
    nan = float('nan')
    rows = []
    for (s, q), cm in cms.items():
        b = np.asarray(nbytes[(s, q)], np.float64) / 1000.0
        rows.append(ConfigScore(int(s), int(q), float(b[~t].mean()) if (~t).any() else nan,
                                float(b[t].mean()) if t.any() else nan,
                                metrics.miou(cm[~t].sum(0)) if (~t).any() else nan,
                                metrics.miou(cm[t].sum(0)) if t.any() else nan,
                                float(b.mean()), metrics.miou(cm.sum(0))))
    return sorted(rows, key=lambda c: (c.scale, c.quality))


# --------------------------------------------------------------------------------------------------------
# the profile YAML (the controller's schema)


def profile_document(levels: list[LevelChoice], frame_rate: float, threshold: float, small_region_area: float,
                     tail_downsample: int, dataset: str, rule: str = 'below',
                     scale_thresholds: dict[int, float] | None = None) -> dict:
    """The data the controller loads (see runespoor_cloud.controller.load_profile)."""
    td = {'small_region_area': float(small_region_area), 'tail_threshold': round(float(threshold), 6),
          'rule': rule}
    if scale_thresholds:
        td['scale_thresholds'] = {int(k): round(float(v), 6) for k, v in sorted(scale_thresholds.items())}
    td['downsample'] = int(tail_downsample)
    return {
        'dataset': dataset,
        'frame_rate': float(frame_rate),
        'tail_detector': td,
        'levels': [{'bandwidth_kbps': float(lv.kbps),
                    'standard': {'scale': lv.standard.scale, 'jpeg_quality': lv.standard.quality},
                    'tail': {'scale': lv.tail.scale, 'jpeg_quality': lv.tail.quality}} for lv in levels],
    }


def render_yaml(doc: dict, levels: list[LevelChoice], header: list[str]) -> str:
    """YAML text of `doc` with a header comment and the justifying figures beside every level."""
    lines = [f'# {h}' if h else '#' for h in header]
    body = {k: v for k, v in doc.items() if k != 'levels'}
    lines.append(yaml.safe_dump(body, sort_keys=False, default_flow_style=False).rstrip())
    lines.append('levels:')
    for d, lv in zip(doc['levels'], levels):
        st, tl = lv.standard, lv.tail
        lines.append(f'  # {lv.kbps:g} kbit/s = {lv.budget_kbytes:.2f} kB/frame at {doc["frame_rate"]:g} frames/s')
        lines.append(f'  #   standard x{st.scale} q{st.quality}: {st.kbytes_std:.2f} kB, non-tail mIoU '
                     f'{100 * st.acc_std:.2f} %, tail mIoU {100 * st.acc_tail:.2f} %'
                     + ('' if lv.standard_fits else '  (NOTHING FITS: smallest config)'))
        lines.append(f'  #   tail     x{tl.scale} q{tl.quality}: {tl.kbytes_tail:.2f} kB on tail frames, tail mIoU '
                     f'{100 * tl.acc_tail:.2f} % ({100 * (tl.acc_tail - st.acc_tail):+.2f} vs standard), '
                     f'non-tail mIoU {100 * tl.acc_std:.2f} %' + ('' if lv.tail_fits else '  (NOTHING FITS)'))
        item = yaml.safe_dump([d], sort_keys=False, default_flow_style=None).rstrip().splitlines()
        lines += ['  ' + x for x in item]
    return '\n'.join(lines) + '\n'


def _f2(v: float) -> str:
    """Two decimals; 'n/a' for nan (e.g. precision when nothing is flagged)."""
    return 'n/a' if v is None or not math.isfinite(v) else f'{v:.2f}'


# --------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument('--split', default='train', help='profiling split (default train)')
    parser.add_argument('--val-split', default='val', help='split for the threshold check ("" to skip)')
    parser.add_argument('--val-limit', type=int, default=None, help='use only the first N validation frames')
    parser.add_argument('--scales', default=','.join(map(str, DEFAULT_SCALES)))
    parser.add_argument('--qualities', default=','.join(map(str, DEFAULT_QUALITIES)))
    parser.add_argument('--reference', default='4:90', help='scale:quality that defines the tail frames')
    parser.add_argument('--tail-fraction', type=float, default=0.1, help='worst fraction of frames = tail')
    parser.add_argument('--tail-rule', choices=['fit', 'below', 'above'], default='fit',
                        help="tail detector rule: 'below' (the paper's: few small regions = tail), 'above', or "
                             "'fit' (default): the sign of the regression slope at the reference config decides")
    parser.add_argument('--bandwidths', default=','.join(map(str, DEFAULT_LEVELS_KBPS)),
                        help='bandwidth levels, kbit/s, comma-separated')
    parser.add_argument('--frame-rate', type=float, default=10.0, help='frames/s the bandwidth levels carry')
    parser.add_argument('--methods', default='asr,sr',
                        help='restoration preference per scale, first with weights wins (bilinear last)')
    parser.add_argument('--out', type=Path, default=None,
                        help='profile YAML (default config/profiles/<dataset>.yaml)')
    parser.add_argument('--json', type=Path, default=None, help='also write everything as JSON here')


def _restoration_plan(runner, scales, prefs) -> dict[int, str]:
    plan = {}
    for s in scales:
        plan[s] = 'bilinear'
        if s == 1:
            plan[s] = 'none'
            continue
        for m in prefs:
            why = runner.check(m, s)
            if why is None:
                plan[s] = m
                break
            print(f'runespoor profile: x{s}: {why}; trying the next method', file=sys.stderr)
    return plan


def _scores_to_arrays(scores, cfg_of) -> dict:
    """{(scale, quality): {'cm', 'bytes', 'ratio', 'acc'}}: the per-frame scores of each config as arrays."""
    out = {}
    for key, cfg in cfg_of.items():
        fs = scores[cfg]
        out[key] = {'cm': np.stack([f.cm for f in fs]), 'bytes': np.array([f.nbytes for f in fs]),
                    'ratio': np.array([f.ratio for f in fs]), 'acc': np.array([metrics.present_miou(f.cm) for f in fs])}
    return out


@dataclass(frozen=True)
class Request:
    """The profiling request as validated from the command line."""
    scales: list[int]
    qualities: list[int]
    levels_kbps: list[float]
    ref: tuple[int, int]     # (scale, quality) that defines the tail frames


@dataclass
class Fitted:
    """What the profile is made of: the tail frames at the reference config, the config table and each level's
    choice, the tail threshold (overall and per scale) and how well it detects tail frames."""
    tail: np.ndarray
    table: list[ConfigScore]
    choices: list[LevelChoice]
    fit: metrics.ThresholdFit
    scale_fits: dict[int, metrics.ThresholdFit]
    train_det: dict
    val_det: list[dict]

    @property
    def rule(self) -> str:
        return self.fit.rule


def parse_request(args: argparse.Namespace) -> Request:
    """The configs, levels and reference of the command line; SystemExit with the reason when they are bad."""
    scales = parse_int_list(args.scales, '--scales')
    qualities = parse_int_list(args.qualities, '--qualities')
    levels = [float(v) for v in str(args.bandwidths).split(',') if v.strip()]
    try:
        ref = tuple(int(v) for v in args.reference.split(':'))
        assert len(ref) == 2
    except (ValueError, AssertionError):
        raise SystemExit(f'runespoor profile: --reference must be scale:quality, got {args.reference!r}') from None
    if any(s not in VALID_SCALES for s in scales) or any(not QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1]
                                                         for q in qualities):
        raise SystemExit(f'runespoor profile: scales must be in {VALID_SCALES}, qualities in {QUALITY_RANGE}')
    if ref[0] not in scales or ref[1] not in qualities:
        raise SystemExit(f'runespoor profile: reference x{ref[0]} q{ref[1]} is not among the profiled configs')
    if not levels or args.frame_rate <= 0:
        raise SystemExit('runespoor profile: give at least one bandwidth level and a positive --frame-rate')
    return Request(scales, qualities, levels, ref)


def fit_profile(arr: dict, val: dict, req: Request, plan: dict[int, str], args: argparse.Namespace) -> Fitted:
    """Steps 2-4 of the module docstring on the scored frames (`arr`: profiling split, `val`: validation)."""
    ref, fraction = req.ref, args.tail_fraction
    ref_acc = arr[ref]['acc']
    tail = metrics.tail_frames(ref_acc, fraction)
    table = score_table({k: v['cm'] for k, v in arr.items()}, {k: v['bytes'] for k, v in arr.items()}, tail)
    choices = select_levels(table, req.levels_kbps, args.frame_rate)
    fit = metrics.fit_tail_threshold(arr[ref]['ratio'], ref_acc, tail, rule=args.tail_rule)
    rule = fit.rule
    train_det = metrics.detection_scores(arr[ref]['ratio'], tail, fit.threshold, rule)
    scale_fits = {}   # per scale at the reference quality, same rule (tail = that config's worst frames)
    for sc in req.scales:
        a = arr[(sc, ref[1])]
        scale_fits[sc] = metrics.fit_tail_threshold(a['ratio'], a['acc'], metrics.tail_frames(a['acc'], fraction),
                                                    rule=rule)
    val_det = []
    for (sc, q), v in sorted(val.items()):
        thr = scale_fits[sc].threshold if sc in scale_fits else fit.threshold
        d = metrics.detection_scores(v['ratio'], metrics.tail_frames(v['acc'], fraction), thr, rule)
        d.update(scale=sc, quality=q, method=plan[sc])
        val_det.append(d)
    return Fitted(tail, table, choices, fit, scale_fits, train_det, val_det)


def header_lines(args: argparse.Namespace, req: Request, plan: dict[int, str], frames: int, configs: int,
                 fitted: Fitted) -> list[str]:
    """The profile YAML's header comment: how it was made and the figures behind the threshold."""
    ref, fit, rule, train_det = req.ref, fitted.fit, fitted.rule, fitted.train_det
    header = [
        f'CAC profile for {args.dataset}, written by `runespoor profile` ({time.strftime("%Y-%m-%d %H:%M")}).',
        f'Command: {command_line("profile")}',
        f'Profiled on {args.split}: {frames} frames x {configs} configs (scales {req.scales} x JPEG q '
        f'{req.qualities}); restoration per scale: ' + ', '.join(f'x{s} {m}' for s, m in plan.items()) + '.',
        f'Tail frames: worst {100 * args.tail_fraction:g} % ({int(fitted.tail.sum())} frames) by frame mIoU at the '
        f'reference x{ref[0]} q{ref[1]} (frame mIoU <= {100 * fit.boundary_accuracy:.2f} %).',
        'Per level: standard = best mIoU on non-tail frames within the budget; tail = best mIoU on tail frames '
        'within the same budget.',
        f'tail_threshold: linear regression ratio = {fit.intercept:.5f} + {fit.slope:.5f} * mIoU '
        f'(R^2 {fit.r2:.3f}, {fit.frames} frames) at the tail boundary mIoU -> '
        f'{100 * fit.regression_threshold:.3f} %' + (
            '.' if fit.method == 'regression' else
            f'; the slope contradicts the rule {rule!r}, so the threshold is the {100 * args.tail_fraction:g} % '
            f'quantile of the ratios instead: {100 * fit.threshold:.3f} %.'),
        f'rule: {rule!r} (--tail-rule {args.tail_rule}): a frame is a likely tail frame when its small-region ratio '
        f'is {rule} the threshold.',
        f'  train ({args.split}, x{ref[0]} q{ref[1]}): recall {_f2(train_det["recall"])}, precision '
        f'{_f2(train_det["precision"])} ({train_det["flagged"]} flagged, {train_det["tail"]} tail frames)',
        f'scale_thresholds: the same fit per scale at q{ref[1]} (tail = that config\'s worst '
        f'{100 * args.tail_fraction:g} %):',
    ]
    for sc, f in sorted(fitted.scale_fits.items()):
        header.append(f'  x{sc}: ratio = {f.intercept:.5f} + {f.slope:.5f} * mIoU (R^2 {f.r2:.3f}) -> '
                      f'{100 * f.threshold:.3f} % ({f.method})')
    if rule == 'above':
        header.append('  NOTE: on this data frames with MORE small regions have lower mIoU (negative slope), the '
                      'opposite of the paper\'s observation on Cityscapes, so the fitted rule is "above".')
    elif fit.slope <= 0:
        header.append(f'  NOTE: the slope is not positive: on this data frames with MORE small regions have lower '
                      f'mIoU, so "ratio below the threshold" (the paper\'s rule) cannot single out tail frames '
                      f'(precision by chance {args.tail_fraction:.2f}); see docs/results.')
    for d in fitted.val_det:
        header.append(f'  {args.val_split} x{d["scale"]} q{d["quality"]} ({d["method"]}, {d["frames"]} frames): recall '
                      f'{_f2(d["recall"])}, precision {_f2(d["precision"])} ({d["flagged"]} flagged, '
                      f'{d["tail"]} tail frames)')
    header.append('Units: bandwidth_kbps kbit/s; frame_rate frames/s; small_region_area, tail_threshold and '
                  'scale_thresholds are fractions of the frame area; downsample = label-map subsampling factor.')
    header.append('')
    return header


def json_document(args: argparse.Namespace, req: Request, plan: dict[int, str], samples, val_samples, arr: dict,
                  fitted: Fitted, out_yaml: Path, seconds: float) -> dict:
    """Everything the profile was made from (read by `runespoor report`)."""
    ref, c = req.ref, fitted
    return {
        'kind': 'runespoor-profile', 'dataset': args.dataset, 'split': args.split, 'frames': len(samples),
        'val_split': args.val_split, 'val_frames': len(val_samples), 'scales': req.scales,
        'qualities': req.qualities,
        'restoration': {str(s): m for s, m in plan.items()}, 'reference': {'scale': ref[0], 'quality': ref[1]},
        'tail_fraction': args.tail_fraction, 'tail_frames': int(c.tail.sum()), 'frame_rate': args.frame_rate,
        'small_region_area': args.small_region_area, 'tail_downsample': args.tail_downsample,
        'threshold': c.fit.as_dict(), 'rule': c.rule,
        'scale_thresholds': {str(sc): f.as_dict() for sc, f in c.scale_fits.items()},
        'train_detection': c.train_det, 'val_detection': c.val_det,
        'table': [asdict(t) for t in c.table],
        'levels': [{'kbps': lv.kbps, 'budget_kbytes': lv.budget_kbytes, 'standard': asdict(lv.standard),
                    'tail': asdict(lv.tail), 'standard_fits': lv.standard_fits, 'tail_fits': lv.tail_fits}
                   for lv in c.choices],
        'reference_frames': {'names': [s.image_path.name for s in samples], 'miou': arr[ref]['acc'],
                             'small_region_ratio': arr[ref]['ratio'], 'tail': c.tail},
        'profile_yaml': str(out_yaml), 'command': command_line('profile'),
        'seconds': seconds, 'device': args.device, 'threads': args.threads,
    }


def print_summary(args: argparse.Namespace, req: Request, fitted: Fitted) -> None:
    """The level table and the threshold on stdout."""
    fit, train_det = fitted.fit, fitted.train_det
    print('\n| kbit/s | kB/frame | standard | non-tail mIoU % | tail config | tail mIoU % | (standard on tail) |')
    print('|---|---|---|---|---|---|---|')
    for c in fitted.choices:
        print(f'| {c.kbps:g} | {c.budget_kbytes:.2f} | x{c.standard.scale} q{c.standard.quality} '
              f'{"" if c.standard_fits else "(over) "}| {100 * c.standard.acc_std:.2f} | x{c.tail.scale} '
              f'q{c.tail.quality} {"" if c.tail_fits else "(over) "}| {100 * c.tail.acc_tail:.2f} | '
              f'{100 * c.standard.acc_tail:.2f} |')
    print(f'\ntail rule {fitted.rule!r}, threshold {100 * fit.threshold:.3f} % ({fit.method}; regression slope '
          f'{fit.slope:.4f}, R^2 {fit.r2:.3f}); per scale ' + ', '.join(
              f'x{sc} {100 * f.threshold:.2f} %' for sc, f in sorted(fitted.scale_fits.items()))
          + f'; train recall {_f2(train_det["recall"])} precision {_f2(train_det["precision"])}')
    ref = req.ref
    val_ref = next((d for d in fitted.val_det if d['scale'] == ref[0]), None)
    if val_ref:
        print(f'{args.val_split} at x{ref[0]} q{ref[1]}: recall {_f2(val_ref["recall"])}, '
              f'precision {_f2(val_ref["precision"])}')


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    req = parse_request(args)
    try:
        root = paths.data_root(args.data_root)
        samples = select_samples(args.dataset, root, args.split, args.every, args.limit)
        val_samples = select_samples(args.dataset, root, args.val_split, 1, args.val_limit) if args.val_split else []
        runner = setup_runner(args)
    except (DatasetError, ModelFileError, FileNotFoundError, EvalError) as exc:
        print(f'runespoor profile: {exc}', file=sys.stderr)
        return 2
    prefs = [m for m in args.methods.split(',') if m and m != 'bilinear']
    plan = _restoration_plan(runner, req.scales, prefs)

    def cfg(s, q):
        return Config('bilinear' if plan[s] in ('none', 'bilinear') else plan[s], s, q)

    cfg_of = {(s, q): cfg(s, q) for s in req.scales for q in req.qualities}
    print(f'runespoor profile: {args.dataset} {args.split}, {len(samples)} frames x {len(cfg_of)} configs; '
          f'restoration ' + ', '.join(f'x{s}: {m}' for s, m in plan.items()), flush=True)
    try:
        arr = _scores_to_arrays(runner.run(samples, list(cfg_of.values()), desc='profile'), cfg_of)
        val_cfg = {(s, req.ref[1]): cfg(s, req.ref[1]) for s in req.scales if s > 1}
        val = (_scores_to_arrays(runner.run(val_samples, list(val_cfg.values()), desc='val'), val_cfg)
               if val_samples else {})
    except (DatasetError, EvalError, ModelFileError) as exc:
        print(f'runespoor profile: {exc}', file=sys.stderr)
        return 2
    fitted = fit_profile(arr, val, req, plan, args)

    out_yaml = args.out or paths.config_dir() / 'profiles' / f'{args.dataset}.yaml'
    doc = profile_document(fitted.choices, args.frame_rate, fitted.fit.threshold, args.small_region_area,
                           args.tail_downsample, args.dataset, fitted.rule,
                           {sc: f.threshold for sc, f in fitted.scale_fits.items()})
    header = header_lines(args, req, plan, len(samples), len(cfg_of), fitted)
    write_text_atomic(render_yaml(doc, fitted.choices, header), out_yaml)
    if args.json:
        write_json_atomic(json_document(args, req, plan, samples, val_samples, arr, fitted, out_yaml,
                                        time.perf_counter() - t_start), Path(args.json))
    print_summary(args, req, fitted)
    print(f'wrote {out_yaml}' + (f' and {args.json}' if args.json else '')
          + f' ({time.perf_counter() - t_start:.0f} s)')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='runespoor profile')
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

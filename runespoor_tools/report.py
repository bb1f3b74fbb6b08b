"""`runespoor report`: Markdown tables and PNG figures from `runespoor eval` (and `runespoor profile`) JSON.

Tables (numbering of this project's docs; the paper's journal version numbers them 2-5):
  I   class-wise tail breakdown at x4 (tail classes' IoU per method, tail mean, normalised, overall mIoU);
  II  overall and class-wise tail mIoU per scale;
  III frame-wise tail accuracy (10-frame episodes: 90 % = 10th percentile, 99 % = 1st percentile, mean);
  IV  overall mIoU, PSNR and SSIM per scale (with the bytes per frame sent).
Figures: fig7_classwise_x4.png (normalised class-wise IoU per method), fig10_episodes.png (episode accuracy
distribution at x4 and x6), fig11_accuracy_bandwidth.png (mIoU vs kB/frame, log axis, every scale x quality),
fig6_tail_detection.png (tail-frame detection: frame accuracy vs small-region ratio and recall/precision at the
profiled threshold). A profile JSON (from `runespoor profile`) adds the profile table and the threshold.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from runespoor_cloud.metrics import detection_scores, tail_frames
from runespoor_tools.evaluate import command_line

METHOD_ORDER = ('bilinear', 'sr', 'cloudseg', 'asr', 'hr')
METHOD_LABEL = {'bilinear': 'Bilinear', 'sr': 'standard SR', 'cloudseg': 'CloudSeg', 'asr': 'ASR', 'hr': 'HR'}
METHOD_COLOR = {'bilinear': '#7f7f7f', 'sr': '#1f77b4', 'cloudseg': '#2ca02c', 'asr': '#d62728', 'hr': '#000000'}


class ReportError(ValueError):
    """An input file that is not an eval/profile JSON, or inputs that cannot be combined."""


def _pct(v, digits=2) -> str:
    return '–' if v is None or (isinstance(v, float) and not math.isfinite(v)) else f'{100 * v:.{digits}f}'


def _num(v, fmt) -> str:
    return '–' if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def load_inputs(files: list[Path]) -> tuple[list[dict], list[dict]]:
    evals, profiles = [], []
    for f in files:
        try:
            d = json.loads(Path(f).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportError(f'{f}: cannot read JSON ({exc})') from exc
        kind = d.get('kind') if isinstance(d, dict) else None
        if kind == 'runespoor-eval':
            d['_file'] = str(f)
            evals.append(d)
        elif kind == 'runespoor-profile':
            d['_file'] = str(f)
            profiles.append(d)
        else:
            raise ReportError(f'{f}: not a runespoor eval or profile file (kind={kind!r})')
    if not evals:
        raise ReportError('no eval metrics file given')
    ds = {(e['dataset'], e['split']) for e in evals}
    if len(ds) > 1:
        raise ReportError(f'eval files mix data sets/splits {sorted(ds)}; report one at a time')
    return evals, profiles


class Results:
    """All eval rows keyed by (method, scale, quality); a later file overrides an earlier one."""

    def __init__(self, evals: list[dict]):
        self.evals = evals
        self.rows: dict[tuple[str, int, int | None], dict] = {}
        for e in evals:
            for r in e['results']:
                self.rows[(r['method'], int(r['scale']), r['quality'])] = r
        self.dataset, self.split = evals[0]['dataset'], evals[0]['split']
        self.class_names = evals[-1]['class_names']
        self.hr = self.rows.get(('hr', 1, None))
        if self.hr is None:
            raise ReportError('no hr results in the eval files')
        self.scales = sorted({s for (_, s, _) in self.rows if s > 1})
        self.qualities = sorted({q for (_, _, q) in self.rows if q is not None})
        skipped = {}
        for e in evals:
            for s in e.get('skipped', []):
                skipped[(s['method'], s['scale'])] = s['reason']
        self.skipped = {k: v for k, v in skipped.items() if (k[0], k[1]) not in {(m, sc) for (m, sc, _) in self.rows}}

    def get(self, method, scale, quality):
        if method == 'hr':
            return self.hr
        return self.rows.get((method, scale, quality))

    def methods(self, with_hr=True) -> list[str]:
        present = {m for (m, _, _) in self.rows}
        return [m for m in METHOD_ORDER if m in present and (with_hr or m != 'hr')]

    def at_quality(self, q: int, scales=None):
        """(scale, method, row) of every method but HR evaluated at JPEG quality `q`, scale by scale, in
        METHOD_ORDER (the rows of the per-scale tables)."""
        for s in self.scales if scales is None else scales:
            for m in self.methods(with_hr=False):
                r = self.get(m, s, q)
                if r is not None:
                    yield s, m, r


# --------------------------------------------------------------------------------------------------------
# tables


def table_classwise(res: Results, scale: int, q: int) -> str:
    bil = res.get('bilinear', scale, q)
    if bil is None:
        return f'_No bilinear results at x{scale} q{q}._\n'
    methods = [m for m in res.methods() if res.get(m, scale, q) is not None]
    share = res.hr.get('class_pixel_share') or {}
    lines = ['| class IoU (%) | ' + ' | '.join(METHOD_LABEL[m] for m in methods) + ' | size (%) |',
             '|---' * (len(methods) + 2) + '|']
    for c in bil['tail_classes']:
        cells = [_pct(res.get(m, scale, q)['class_iou'].get(c)) for m in methods]
        lines.append(f'| {c} | ' + ' | '.join(cells) + f' | {_pct(share.get(c))} |')
    tail_share = sum(share.get(c, 0.0) for c in bil['tail_classes']) if share else None
    hr_tail = res.hr.get('tail_miou_by_scale', {}).get(f'x{scale}-q{q}')
    tails = [hr_tail if m == 'hr' else res.get(m, scale, q)['tail_miou'] for m in methods]
    norms = [1.0 if m == 'hr' else res.get(m, scale, q)['tail_miou_normalized'] for m in methods]
    lines.append('| **tail classes** | ' + ' | '.join(f'**{_pct(v)}**' for v in tails)
                 + f' | {_pct(tail_share)} in total |')
    lines.append('| normalized | ' + ' | '.join(_num(v, '.2f') for v in norms) + ' | |')
    lines.append('| overall mIoU (%) | ' + ' | '.join(_pct(res.get(m, scale, q)['miou']) for m in methods) + ' | |')
    return '\n'.join(lines) + '\n'


def table_per_scale(res: Results, q: int) -> str:
    lines = ['| scale | method | tail classes mIoU (%) | tail / HR | overall mIoU (%) |', '|---|---|---|---|---|']
    for s in res.scales:
        hr_tail = res.hr.get('tail_miou_by_scale', {}).get(f'x{s}-q{q}')
        lines.append(f'| x{s} | HR (on this set) | {_pct(hr_tail)} | 1.00 | {_pct(res.hr["miou"])} |')
        for _, m, r in res.at_quality(q, [s]):
            lines.append(f'| x{s} | {METHOD_LABEL[m]} | {_pct(r["tail_miou"])} | '
                         f'{_num(r["tail_miou_normalized"], ".3f")} | {_pct(r["miou"])} |')
    return '\n'.join(lines) + '\n'


def table_framewise(res: Results, q: int) -> str:
    lines = ['| scale | method | 90 % (p10 of episodes) | 99 % (p1) | mean | episodes |', '|---|---|---|---|---|---|']
    lines.append(f'| – | HR | {_pct(res.hr["frame_p90"])} | {_pct(res.hr["frame_p99"])} | '
                 f'{_pct(res.hr["frame_mean"])} | {res.hr.get("episodes", "–")} |')
    for s, m, r in res.at_quality(q):
        lines.append(f'| x{s} | {METHOD_LABEL[m]} | {_pct(r["frame_p90"])} | {_pct(r["frame_p99"])} | '
                     f'{_pct(r["frame_mean"])} | {r.get("episodes", "–")} |')
    return '\n'.join(lines) + '\n'


def table_overall(res: Results, q: int) -> str:
    lines = ['| scale | method | mIoU (%) | PSNR (dB) | SSIM | kB/frame | restore ms | segment ms |',
             '|---|---|---|---|---|---|---|---|']
    lines.append(f'| – | HR | {_pct(res.hr["miou"])} | – | – | – | – | {_num(res.hr.get("ms_segment"), ".0f")} |')
    for s, m, r in res.at_quality(q):
        lines.append(f'| x{s} | {METHOD_LABEL[m]} | {_pct(r["miou"])} | {_num(r["psnr"], ".2f")} | '
                     f'{_num(r["ssim"], ".3f")} | {_num(r["kbytes_per_frame"], ".2f")} | '
                     f'{_num(r.get("ms_restore"), ".0f")} | {_num(r.get("ms_segment"), ".0f")} |')
    return '\n'.join(lines) + '\n'


def table_profile(p: dict) -> str:
    lines = [f'Profile on `{p["split"]}` ({p["frames"]} frames), frame rate {p["frame_rate"]} frames/s, '
             f'reference config x{p["reference"]["scale"]} q{p["reference"]["quality"]}; restoration per scale: '
             + ', '.join(f'x{k}: {v}' for k, v in sorted(p['restoration'].items(), key=lambda kv: int(kv[0])))
             + '.', '',
             '| bandwidth (kbit/s) | budget (kB/frame) | standard config | non-tail mIoU (%) | tail config | '
             'tail mIoU (%) | tail mIoU with standard (%) |', '|---|---|---|---|---|---|---|']
    for lv in p['levels']:
        st, tl = lv['standard'], lv['tail']
        lines.append(f'| {lv["kbps"]:g} | {lv["budget_kbytes"]:.2f} | x{st["scale"]} q{st["quality"]} '
                     f'({st["kbytes"]:.2f} kB) | {_pct(st["acc_std"])} | x{tl["scale"]} q{tl["quality"]} '
                     f'({tl["kbytes_tail"]:.2f} kB) | {_pct(tl["acc_tail"])} | {_pct(st["acc_tail"])} |')
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------------------------------------
# figures


# Figures are made as matplotlib Figure objects, not through pyplot: no global figure list to close and no
# backend to choose (savefig renders PNG with Agg), so importing this module changes nothing for its caller.
def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def fig_classwise(res: Results, scale: int, q: int, path: Path) -> Path | None:
    bil = res.get('bilinear', scale, q)
    if bil is None:
        return None
    methods = [m for m in res.methods(with_hr=False) if res.get(m, scale, q) is not None]
    hr_iou = res.hr['class_iou']
    # classes ordered by bilinear / HR (the tail first), as the tail set is chosen
    order = sorted(res.class_names, key=lambda c: (bil['class_iou'][c] or 0) / hr_iou[c] if hr_iou.get(c) else 9)
    x = np.arange(len(order))
    w = 0.8 / max(1, len(methods))
    fig = Figure(figsize=(max(8, 0.8 * len(order) + 2), 4))
    ax = fig.subplots()
    for i, m in enumerate(methods):
        r = res.get(m, scale, q)
        vals = [(r['class_iou'][c] or 0) / hr_iou[c] if hr_iou.get(c) else np.nan for c in order]
        ax.bar(x + (i - (len(methods) - 1) / 2) * w, vals, w, label=f'{METHOD_LABEL[m]} '
               f'(mIoU {100 * r["miou"]:.1f} %)', color=METHOD_COLOR[m])
    ax.axhline(1.0, color='k', lw=0.8, ls='--')
    ax.set_xticks(x)
    ax.set_xticklabels([f'{c}*' if c in bil['tail_classes'] else c for c in order], rotation=30, ha='right')
    ax.set_ylabel('IoU / IoU(HR)')
    ax.set_title(f'Normalized class-wise IoU at x{scale}, JPEG q{q} ({res.dataset} {res.split}; * = tail class)')
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis='y', alpha=0.3)
    return _save(fig, path)


def fig_episodes(res: Results, scales: list[int], q: int, path: Path) -> Path | None:
    scales = [s for s in scales if res.get('bilinear', s, q) is not None]
    if not scales or not res.hr.get('episode_miou'):
        return None
    fig = Figure(figsize=(5.5 * len(scales), 4))
    axes = fig.subplots(1, len(scales), squeeze=False)
    for ax, s in zip(axes[0], scales):
        for m in res.methods():
            r = res.get(m, s, q)
            if r is None or not r.get('episode_miou'):
                continue
            v = np.sort(np.asarray([e for e in r['episode_miou'] if e is not None], float))
            pos = 100.0 * (np.arange(v.size) + 0.5) / v.size
            ax.plot(pos, 100 * v, 'o-', ms=4, color=METHOD_COLOR[m], label=f'{METHOD_LABEL[m]} '
                    f'(p90 {_pct(r["frame_p90"], 1)}, mean {_pct(r["frame_mean"], 1)})')
            ax.axhline(100 * float(v.mean()), color=METHOD_COLOR[m], ls=':', lw=0.8)
        ax.axvline(10, color='k', lw=0.6, ls='--')
        ax.set_xlabel('episodes, sorted by mIoU (%)')
        ax.set_ylabel('10-frame episode mIoU (%)')
        ax.set_title(f'x{s}, JPEG q{q}')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f'Frame-wise accuracy distribution ({res.dataset} {res.split}, '
                 f'{len(res.hr["episode_miou"])} episodes; dotted: mean)')
    return _save(fig, path)


def fig_bandwidth(res: Results, path: Path, frame_rate: float | None = None) -> Path | None:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    any_pts = False
    for m in ('bilinear', 'sr', 'asr'):
        pts = [(r['kbytes_per_frame'], r['miou'], s, q) for (mm, s, q), r in res.rows.items()
               if mm == m and r.get('kbytes_per_frame')]
        if not pts:
            continue
        any_pts = True
        pts.sort()
        kb = np.array([p[0] for p in pts])
        acc = np.array([p[1] for p in pts])
        xs = kb * 8 * frame_rate if frame_rate else kb
        ax.scatter(xs, 100 * acc, s=14, color=METHOD_COLOR[m], alpha=0.6)
        # Pareto front: best accuracy at or below each bandwidth
        front = np.maximum.accumulate(acc)
        keep = np.r_[True, front[1:] > front[:-1]]
        ax.step(xs[keep], 100 * front[keep], where='post', color=METHOD_COLOR[m], label=METHOD_LABEL[m])
        for (k, a, s, q), x in zip(pts, xs):
            if q == max(p[3] for p in pts):
                ax.annotate(f'x{s}', (x, 100 * a), fontsize=7, xytext=(2, 2), textcoords='offset points')
    if not any_pts:
        return None
    ax.axhline(100 * res.hr['miou'], color='k', ls='--', lw=0.8, label='HR (no compression)')
    ax.set_xscale('log')
    ax.set_xlabel(f'kbit/s at {frame_rate:g} frames/s' if frame_rate else 'kB per frame (log scale)')
    ax.set_ylabel('mIoU (%)')
    ax.set_title(f'Accuracy vs bandwidth, scales {res.scales} x JPEG q {res.qualities}')
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=8)
    return _save(fig, path)


def _detector_input(res: Results, scale: int, q: int) -> tuple[str | None, np.ndarray, np.ndarray]:
    """The best available method at (scale, q) (asr > sr > bilinear), its frame mIoUs (nan where a frame has
    none) and small-region ratios; (None, empty, empty) when none was evaluated there."""
    m = next((m for m in ('asr', 'sr', 'bilinear') if res.get(m, scale, q) is not None), None)
    if m is None:
        return None, np.empty(0), np.empty(0)
    r = res.get(m, scale, q)
    return (m, np.array([np.nan if v is None else v for v in r['frame_miou']], float),
            np.array(r['small_region_ratio'], float))


def detection_rows(res: Results, q: int, threshold: float, fraction: float = 0.1, rule: str = 'below',
                   per_scale: dict | None = None) -> list[dict]:
    """Per scale: the detector (the scale's own threshold where `per_scale` has one) on the predictions of
    the best available method (asr > sr > bilinear)."""
    out = []
    for s in res.scales:
        m, acc, ratio = _detector_input(res, s, q)
        if m is None:
            continue
        tail = tail_frames(acc, fraction)
        d = detection_scores(ratio, tail, (per_scale or {}).get(s, threshold), rule)
        ok = np.isfinite(acc) & np.isfinite(ratio)
        corr = float(np.corrcoef(ratio[ok], acc[ok])[0, 1]) if ok.sum() > 2 else float('nan')
        d.update(scale=s, method=m, quality=q, corr=corr)
        out.append(d)
    return out


def fig_detection(res: Results, q: int, threshold: float | None, path: Path, scale: int = 4, rule: str = 'below',
                  per_scale: dict | None = None) -> Path | None:
    s = scale if scale in res.scales else (res.scales[len(res.scales) // 2] if res.scales else None)
    m, acc, ratio = _detector_input(res, s, q)
    if m is None:
        return None
    tail = tail_frames(acc)
    if threshold is not None:
        threshold = (per_scale or {}).get(s, threshold)
    fig = Figure(figsize=(11, 4))
    a1, a2 = fig.subplots(1, 2)
    a1.scatter(100 * ratio[~tail], 100 * acc[~tail], s=12, color='#1f77b4', label='other frames')
    a1.scatter(100 * ratio[tail], 100 * acc[tail], s=30, marker='x', color='#d62728', label='tail (worst 10 %)')
    if threshold is not None:
        a1.axvline(100 * threshold, color='k', ls='--', lw=1, label=f'threshold {100 * threshold:.2f} %')
    a1.set_xlabel('small-region ratio of the prediction (%)')
    a1.set_ylabel('frame mIoU (%)')
    a1.set_title(f'x{s} q{q}, {METHOD_LABEL[m]} ({res.split}, {acc.size} frames)')
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    grid = np.unique(np.r_[0.0, np.sort(ratio) + 1e-12, ratio.max() + 1e-3])
    sc = [detection_scores(ratio, tail, t, rule) for t in grid]
    a2.plot(100 * grid, [d['recall'] for d in sc], color='#d62728', label='recall')
    a2.plot(100 * grid, [d['precision'] for d in sc], color='#1f77b4', label='precision')
    if threshold is not None:
        a2.axvline(100 * threshold, color='k', ls='--', lw=1)
        rows = detection_rows(res, q, threshold, rule=rule, per_scale=per_scale)
        txt = '\n'.join(f'x{d["scale"]}: recall {_num(d["recall"], ".2f")}, precision {_num(d["precision"], ".2f")}'
                        for d in rows)
        a2.text(0.98, 0.05, txt, transform=a2.transAxes, ha='right', va='bottom', fontsize=8,
                bbox=dict(fc='white', alpha=0.8))
    a2.set_xlabel(f'threshold on the small-region ratio (%), tail = ratio {"<" if rule == "below" else ">"} threshold')
    a2.set_ylabel('tail-frame detection')
    a2.set_ylim(0, 1.05)
    a2.legend(fontsize=8, loc='center right')
    a2.grid(alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------------


def build_report(evals: list[dict], profiles: list[dict], out: Path, quality: int | None = None,
                 title: str | None = None, name: str = 'report.md') -> Path:
    """Write `name` (Markdown) and its figures into `out`; the figures are prefixed with the Markdown file's
    stem unless it is report.md."""
    res = Results(evals)
    out.mkdir(parents=True, exist_ok=True)
    q = quality if quality is not None else (90 if 90 in res.qualities else max(res.qualities))
    prof = profiles[-1] if profiles else None
    det = _Detector.of(prof)
    pre = '' if name == 'report.md' else Path(name).stem + '_'   # figures named after the Markdown file
    figs = _figures(res, q, det, out, pre)
    md = (_intro(res, evals, q, title) + _accuracy_sections(res, q, figs) + _detection_section(res, q, prof, det)
          + _figure_lines(figs['fig6'], 'Fig. 6', 'Fig. 6: left, frame mIoU against the small-region ratio (tail '
                          f'frames as crosses); right, recall and precision of "ratio {det.sign} threshold" over '
                          'thresholds.')
          + (['## CAC profile', '', table_profile(prof)] if prof else [])
          + _provenance(evals, profiles, out, name))
    path = out / name
    path.write_text('\n'.join(md))
    return path


@dataclass(frozen=True)
class _Detector:
    """The tail detector a profile file fitted (none without one): threshold, rule, per-scale thresholds."""
    threshold: float | None = None
    rule: str = 'below'
    per_scale: dict = field(default_factory=dict)
    frame_rate: float | None = None

    @classmethod
    def of(cls, prof: dict | None) -> '_Detector':
        if not prof:
            return cls()
        return cls(prof['threshold']['threshold'], prof.get('rule', 'below'),
                   {int(k): v['threshold'] for k, v in prof.get('scale_thresholds', {}).items()}, prof['frame_rate'])

    @property
    def sign(self) -> str:
        return '<' if self.rule == 'below' else '>'


def _figures(res: Results, q: int, det: _Detector, out: Path, pre: str) -> dict[str, Path | None]:
    return {
        'fig7': fig_classwise(res, 4 if 4 in res.scales else res.scales[0], q, out / f'{pre}fig7_classwise_x4.png'),
        'fig10': fig_episodes(res, [s for s in (4, 6) if s in res.scales] or res.scales[:2], q,
                              out / f'{pre}fig10_episodes.png'),
        'fig11': fig_bandwidth(res, out / f'{pre}fig11_accuracy_bandwidth.png', det.frame_rate),
        'fig6': fig_detection(res, q, det.threshold, out / f'{pre}fig6_tail_detection.png', rule=det.rule,
                              per_scale=det.per_scale),
    }


def _figure_lines(path: Path | None, label: str, caption: str) -> list[str]:
    """A figure and its caption, or nothing when the figure could not be drawn."""
    return [f'![{label}]({path.name})', '', f'*{caption}*', ''] if path else []


def _intro(res: Results, evals: list[dict], q: int, title: str | None) -> list[str]:
    md = [f'# {title or f"Runespoor results: {res.dataset} {res.split}"}', '',
          f'{res.hr["frames"]} frames of `{res.dataset}` `{res.split}`; tables at JPEG quality {q}. '
          f'Segmentation: `{Path(evals[-1]["segmentation"]).name}` (frozen). Metrics as defined in docs/design.md '
          '§2: mIoU from the confusion matrix over the whole split; tail classes = the floor(K/2) classes with the '
          'lowest IoU(bilinear)/IoU(HR) at that scale; frame-wise figures over 10-frame episodes '
          '(90 % = 10th percentile, 99 % = 1st percentile).', '']
    if res.skipped:
        md += ['**Missing** (not evaluated; weights absent or unloadable when the eval ran):', '']
        md += [f'- {v}' for _, v in sorted(res.skipped.items())] + ['']
    return md


def _accuracy_sections(res: Results, q: int, figs: dict[str, Path | None]) -> list[str]:
    """Tables I-IV with Figs. 7, 10 and 11."""
    s4 = 4 if 4 in res.scales else res.scales[0]
    return ([f'## Table I — class-wise tail accuracy breakdown at x{s4}', '', table_classwise(res, s4, q)]
            + _figure_lines(figs['fig7'], 'Fig. 7',
                            f'Fig. 7: class-wise IoU normalised by HR at x{s4} (tail classes starred).')
            + ['## Table II — overall and class-wise tail accuracy per scale', '', table_per_scale(res, q)]
            + ['## Table III — frame-wise tail accuracy (10-frame episodes)', '', table_framewise(res, q)]
            + _figure_lines(figs['fig10'], 'Fig. 10', 'Fig. 10: distribution of episode mIoU; the 10 % line marks '
                            'the 90 % frame-wise tail accuracy.')
            + ['## Table IV — overall accuracy and image quality', '', table_overall(res, q)]
            + _figure_lines(figs['fig11'], 'Fig. 11', 'Fig. 11: mIoU against bandwidth (log axis) over every '
                            'evaluated scale x JPEG quality; lines are each method\'s best accuracy within a '
                            'bandwidth.'))


def _detection_section(res: Results, q: int, prof: dict | None, det: _Detector) -> list[str]:
    """The fitted threshold and its recall/precision per scale (Fig. 6 follows it)."""
    md = ['## Tail-frame detection (Fig. 6)', '']
    if not prof:
        return md + ['_No profile file given: no fitted threshold (recall/precision curves only)._', '']
    t, rule, per_scale = prof['threshold'], det.rule, det.per_scale
    how = ('' if t.get('method', 'regression') == 'regression' else
           f'; the slope contradicts the rule, so the regression value {100 * t["regression_threshold"]:.3f} % '
           f'would flag the wrong frames and the threshold is the tail-fraction quantile of the ratios instead')
    md += [f'Threshold fitted by `runespoor profile` on `{prof["split"]}` (linear regression of the '
           f'small-region ratio on frame mIoU, evaluated at the tail boundary mIoU '
           f'{_pct(t["boundary_accuracy"])} %{how}): **{100 * t["threshold"]:.3f} %** '
           f'(slope {t["slope"]:.4f}, R² {_num(t["r2"], ".3f")}), rule **ratio {det.sign} threshold** = tail frame'
           + (' (the paper\'s rule).' if rule == 'below' else
              ' (chosen by the negative slope: the opposite of the paper\'s rule).')
           + (' Per scale (same fit at each scale\'s reference-quality config): ' + ', '.join(
               f'x{k} {100 * v:.2f} %' for k, v in sorted(per_scale.items())) + '.' if per_scale else '')
           + f' Detector: small regions < {100 * prof["small_region_area"]:.2f} % of the frame, label map '
           f'subsampled x{prof["tail_downsample"]}.',
           '', f'On `{res.split}` (tail = worst 10 % of frames at each scale'
           + (', each scale with its own threshold' if per_scale else '') + '):', '',
           '| scale | method | threshold | recall | precision | precision by chance | flagged / frames | '
           'tail frames | corr(ratio, frame mIoU) |', '|---|---|---|---|---|---|---|---|---|']
    for d in detection_rows(res, q, t['threshold'], rule=rule, per_scale=per_scale):
        md.append(f'| x{d["scale"]} | {METHOD_LABEL[d["method"]]} | {100 * d["threshold"]:.2f} % | '
                  f'{_num(d["recall"], ".2f")} | '
                  f'{_num(d["precision"], ".2f")} | {d["tail"] / max(1, d["frames"]):.2f} | '
                  f'{d["flagged"]} / {d["frames"]} | {d["tail"]} | {_num(d["corr"], "+.2f")} |')
    md.append('')
    if t['slope'] <= 0:
        md += [f'**The fitted slope is negative**: on `{prof["split"]}` frames with more small regions have '
               'lower mIoU, the opposite of the paper\'s Cityscapes observation'
               + (', so the rule "ratio below the threshold = tail frame" cannot separate tail frames here '
                  '(compare precision with the chance level).' if rule == 'below' else
                  '; the profile therefore uses the inverted rule (ratio above the threshold = tail frame). '
                  'The correlation is weak either way (see R²): compare precision with the chance level.'), '']
    return md


def _provenance(evals: list[dict], profiles: list[dict], out: Path, name: str) -> list[str]:
    """The commands that produced the inputs and this report, and how long each input took."""
    md = ['## How these results were produced', '', '```']
    md += [e.get('command') or f'(eval file {e["_file"]})' for e in evals]
    md += [p.get('command') or f'(profile file {p["_file"]})' for p in profiles]
    md += [command_line('report') if sys.argv[1:2] == ['report'] else
           f'runespoor report {" ".join(e["_file"] for e in evals + profiles)} --out {out}'
           + ('' if name == 'report.md' else f' --name {name}'), '```', '']
    md += ['Wall time of the command that wrote each file (per-frame results already in the cache are reused, '
           'so a cold run takes longer; the restore/segment columns of Table IV are per-frame times measured when '
           'the frames were computed): ' + '; '.join(
               f'`{e["_file"]}` {e.get("seconds", 0):.0f} s ({e.get("device")}, threads {e.get("threads")})'
               for e in evals + profiles) + '.', '']
    return md


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('inputs', nargs='+', type=Path,
                        help='metrics.json files of `runespoor eval` (and profile.json of `runespoor profile`)')
    parser.add_argument('--out', type=Path, required=True, help='output folder (Markdown + PNGs)')
    parser.add_argument('--name', default=None,
                        help='Markdown file name (default report.md; otherwise figures are prefixed with its stem)')
    parser.add_argument('--quality', type=int, default=None, help='JPEG quality of the tables (default 90)')
    parser.add_argument('--title', default=None)


def run(args: argparse.Namespace) -> int:
    try:
        evals, profiles = load_inputs(args.inputs)
        path = build_report(evals, profiles, args.out, args.quality, args.title, args.name or 'report.md')
    except ReportError as exc:
        print(f'runespoor report: {exc}', file=sys.stderr)
        return 2
    print(f'wrote {path}')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='runespoor report')
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

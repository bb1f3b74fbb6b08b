"""The cloud chain, written once: decode -> restore -> analyse (segment) -> tail.

:class:`CloudChain` holds a :class:`~runespoor_cloud.restore.Restorer`, a
:class:`~runespoor_cloud.segmentation.Segmenter` and the tail detector's settings, and runs one frame
through them. Everything that takes a frame through the cloud uses it: the restorer, segmentation and
tail detector nodes each run their stage of it (``decode`` + ``restore``, ``segment``, ``judge``), the
single-process cloud chains those stages by direct calls, and ``runespoor eval`` / ``profile`` / ``bench``,
training's validation and the demo's offline baselines run whole frames (``process`` on a decoded frame,
``__call__`` on JPEG bytes). A stage whose object is missing (no segmenter, ``tail=None``) is skipped.

How fast it runs is the Restorer's and Segmenter's options (runespoor_cloud/inference.py); when both run
optimised, the restored frame stays a tensor on the device between restore and segment (quantized to
0..255 exactly as the uint8 round trip does), and with ``rgb_decode`` the JPEG is decoded straight to RGB.
Logic only (no ROS).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from runespoor_cloud.inference import PLAIN, InferenceOptions, grad_context
from runespoor_cloud.tail import (DEFAULT_DOWNSAMPLE, DEFAULT_SMALL_REGION_AREA, DEFAULT_TAIL_THRESHOLD, TailResult,
                                  analyze)
from runespoor_edge.codec import decode_jpeg

@dataclass(frozen=True)
class TailSettings:
    """The tail detector's parameters (runespoor_cloud/tail.py): a frame sent at a scale with an entry in
    ``scale_thresholds`` is judged against that threshold, any other against ``tail_threshold``."""
    small_region_area: float = DEFAULT_SMALL_REGION_AREA
    tail_threshold: float = DEFAULT_TAIL_THRESHOLD
    downsample: int = DEFAULT_DOWNSAMPLE
    rule: str = 'below'
    scale_thresholds: Mapping[int, float] = field(default_factory=dict)

    def threshold_for(self, scale: int | None) -> float:
        """The threshold for a frame sent at `scale` (None = unknown)."""
        return self.scale_thresholds.get(scale, self.tail_threshold)


@dataclass
class ChainResult:
    labels: np.ndarray | None          # uint8 HxW at the source size (None without a segmenter)
    tail: TailResult | None            # None without tail settings
    times_ms: dict[str, float] = field(default_factory=dict)   # decode, restore, segment, tail, total
    restored_frame: np.ndarray | torch.Tensor | None = None

    @property
    def restored(self) -> np.ndarray:
        """The restored RGB uint8 HxWx3 frame (converted from the device tensor when it stayed one)."""
        if isinstance(self.restored_frame, torch.Tensor):
            self.restored_frame = self.restored_frame[0].to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return self.restored_frame


class CloudChain:
    """decode -> restore -> segment -> tail on one frame. ``timed=True`` synchronizes a CUDA device between
    stages for per-stage times (costs a little on GPU)."""

    def __init__(self, restorer=None, segmenter=None, tail: TailSettings | None = TailSettings(),
                 timed: bool = True):
        self.restorer = restorer
        self.segmenter = segmenter
        self.tail = tail
        self.timed = timed
        owner = segmenter if segmenter is not None else restorer
        self.device = torch.device(owner.device) if owner is not None else torch.device('cpu')

    @property
    def options(self) -> InferenceOptions:
        """The restorer's options (else the segmenter's): they decide the decode too."""
        owner = self.restorer if self.restorer is not None else self.segmenter
        return owner.options if owner is not None else PLAIN

    @property
    def fast_handoff(self) -> bool:
        """Both models optimised: the restored frame goes to the segmenter as a device tensor."""
        return bool(self.restorer is not None and self.segmenter is not None and self.restorer.fast
                    and self.segmenter.fast)

    # ---- the stages, one by one (what the nodes run)
    def decode(self, jpeg, expected_size: tuple[int, int] | None = None) -> np.ndarray:
        """JPEG -> RGB uint8 by the codec (its checks and errors; `expected_size` is checked against the
        header before anything is decoded), straight to RGB when the options say so."""
        return decode_jpeg(jpeg, expected_size, rgb_direct=self.options.rgb_decode)

    def restore(self, lr: np.ndarray, scale: int, source_size: tuple[int, int]) -> np.ndarray:
        """Decoded RGB uint8 LR frame -> RGB uint8 at source_size (w, h). Without a restorer only x1 frames of
        the source size pass (as they are)."""
        if self.restorer is None:
            if int(scale) != 1 or (lr.shape[1], lr.shape[0]) != tuple(source_size):
                raise ValueError(f'no restorer in this chain for a x{scale} frame')
            return lr
        return self.restorer.restore(lr, scale, source_size)

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return self.segmenter.predict(rgb)

    def judge(self, labels: np.ndarray, scale: int | None = None) -> TailResult:
        t = self.tail
        return analyze(labels, small_region_area=t.small_region_area, tail_threshold=t.threshold_for(scale),
                       downsample=int(t.downsample), rule=t.rule)

    # ---- whole frames
    def _sync(self):
        if self.timed and self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def process(self, lr: np.ndarray, scale: int, source_size: tuple[int, int]) -> ChainResult:
        """A decoded frame through restore -> segment -> tail (decode time 0)."""
        W, H = int(source_size[0]), int(source_size[1])
        t1 = time.perf_counter()
        labels = None
        if self.fast_handoff:
            with grad_context(self.segmenter.options):
                restored = self.restorer.restore255(lr, scale, (H, W))
                self._sync()
                t2 = time.perf_counter()
                labels = self.segmenter.labels255(restored)[0].cpu().numpy()
        else:
            restored = self.restore(lr, scale, (W, H))
            t2 = time.perf_counter()
            if self.segmenter is not None:
                labels = self.segment(restored)
        t3 = time.perf_counter()
        tail = self.judge(labels, scale) if self.tail is not None and labels is not None else None
        t4 = time.perf_counter()
        ms = lambda a, b: (b - a) * 1000.0  # noqa: E731
        return ChainResult(labels, tail, {'decode': 0.0, 'restore': ms(t1, t2), 'segment': ms(t2, t3),
                                          'tail': ms(t3, t4), 'total': ms(t1, t4)}, restored)

    def __call__(self, jpeg, scale: int, source_size: tuple[int, int]) -> ChainResult:
        """JPEG bytes (an EncodedFrame payload) through decode -> restore -> segment -> tail."""
        t0 = time.perf_counter()
        lr = self.decode(jpeg)
        decode_ms = (time.perf_counter() - t0) * 1000.0
        res = self.process(lr, scale, source_size)
        res.times_ms['decode'] = decode_ms
        res.times_ms['total'] += decode_ms
        return res


def compare_outputs(reference: ChainResult, other: ChainResult) -> dict:
    """Label agreement and tail-verdict agreement of two chain results of the same frame."""
    agree = float((reference.labels == other.labels).mean())
    return {'label_agreement': agree, 'same_tail_verdict': bool(reference.tail.is_tail == other.tail.is_tail),
            'small_region_ratio_diff': abs(float(reference.tail.small_region_ratio) -
                                           float(other.tail.small_region_ratio))}

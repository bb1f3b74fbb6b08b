"""A passive observer node for demo runs and benchmarks: records what flows through the graph.

It only subscribes (best effort, so it never slows a publisher down) and keeps what the run analysis
needs in memory: camera frames and ground-truth labels by capture stamp, what the edge sent, the cloud's
label maps, tail reports, knob changes and link statistics.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from runespoor.msg import EncodedFrame, KnobConfig, LinkStats, TailReport
from sensor_msgs.msg import Image

from runespoor_common import graph
from runespoor_common.imgconv import image_to_labels, image_to_rgb
from runespoor_common.qos import LATCHED_QOS, OBSERVE_QOS, OBSERVE_RELIABLE_QOS
from runespoor_tools import run_analysis as ra


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_key(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Monitor(Node):
    def __init__(self, keep_images: bool = True, keep_overlays: int = 2000, **kwargs):
        super().__init__('runespoor_monitor', **kwargs)
        self.lock = threading.Lock()
        self.keep_images = keep_images
        self.keep_overlays = keep_overlays
        self.images: dict[int, np.ndarray] = {}
        self.gt: dict[int, np.ndarray] = {}
        self.captured: list[float] = []
        self.sent: list[ra.SentFrame] = []
        self.pred: dict[int, np.ndarray] = {}
        self.pred_times: dict[int, float] = {}
        self.overlays: list[tuple[float, np.ndarray]] = []
        self.tails: list[ra.TailEvent] = []
        self.knobs: list[ra.KnobEvent] = []
        self.link: list[dict] = []
        self.create_subscription(Image, graph.CAMERA_IMAGE, self._on_image, OBSERVE_QOS)
        self.create_subscription(Image, graph.CAMERA_LABELS, self._on_gt, OBSERVE_QOS)
        self.create_subscription(EncodedFrame, graph.UPLINK, self._on_uplink, OBSERVE_QOS)
        self.create_subscription(Image, graph.SEG_LABELS, self._on_pred, OBSERVE_QOS)
        self.create_subscription(Image, graph.SEG_OVERLAY, self._on_overlay, OBSERVE_QOS)
        self.create_subscription(TailReport, graph.TAIL_REPORT, self._on_tail, OBSERVE_RELIABLE_QOS)
        self.create_subscription(KnobConfig, graph.KNOBS, self._on_knobs, LATCHED_QOS)
        self.create_subscription(LinkStats, graph.LINK_STATS, self._on_link, OBSERVE_RELIABLE_QOS)

    @staticmethod
    def now() -> float:
        return time.time()

    def _on_image(self, msg):
        with self.lock:
            self.captured.append(stamp_s(msg.header.stamp))
            if self.keep_images:
                self.images[stamp_key(msg.header.stamp)] = image_to_rgb(msg, generic_as_color=True)  # as the edge

    def _on_gt(self, msg):
        with self.lock:
            self.gt[stamp_key(msg.header.stamp)] = image_to_labels(msg)

    def _on_uplink(self, msg):
        with self.lock:
            self.sent.append(ra.SentFrame(
                seq=int(msg.seq), stamp=stamp_s(msg.header.stamp), send_time=stamp_s(msg.send_stamp),
                nbytes=len(msg.image.data), scale=int(msg.knobs.scale), quality=int(msg.knobs.jpeg_quality),
                config_id=msg.knobs.config_id, tail_mode=bool(msg.knobs.tail_mode),
                level_kbps=float(msg.knobs.bandwidth_kbps)))

    def _on_pred(self, msg):
        t = self.now()
        with self.lock:
            key = stamp_key(msg.header.stamp)
            self.pred[key] = image_to_labels(msg)
            self.pred_times[key] = t

    def _on_overlay(self, msg):
        with self.lock:
            if len(self.overlays) < self.keep_overlays:
                self.overlays.append((stamp_s(msg.header.stamp), image_to_rgb(msg)))

    def _on_tail(self, msg):
        with self.lock:
            self.tails.append(ra.TailEvent(stamp_s(msg.header.stamp), self.now(),
                                           float(msg.small_region_ratio), bool(msg.is_tail)))

    def _on_knobs(self, msg):
        with self.lock:
            self.knobs.append(ra.KnobEvent(stamp_s(msg.stamp) or self.now(), msg.config_id,
                                           bool(msg.tail_mode), msg.reason))

    def _on_link(self, msg):
        with self.lock:
            self.link.append({'role': msg.role, 'time': stamp_s(msg.header.stamp), 'kbps': float(msg.kbps),
                              'bandwidth_kbps': float(msg.bandwidth_kbps),
                              'frames_per_s': float(msg.frames_per_s),
                              'dropped_total': int(msg.dropped_total), 'frames_total': int(msg.frames_total)})

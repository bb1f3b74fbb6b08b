"""Tail detector node: runespoor/segmentation/labels -> runespoor/tail_report (TailReport) for every
frame. The judged frame's seq and knobs come from runespoor/frame_info (published by the restorer),
matched by capture stamp. The tail stage of the cloud chain (runespoor_cloud/chain.py)."""
from __future__ import annotations

import collections
import sys

from rclpy.node import Node
from sensor_msgs.msg import Image

from runespoor.msg import EncodedFrame, TailReport
from runespoor_cloud.chain import CloudChain, TailSettings
from runespoor_cloud.controller import ProfileError, load_profile, resolve_profile
from runespoor_cloud.tail import (DEFAULT_DOWNSAMPLE, DEFAULT_SMALL_REGION_AREA, DEFAULT_TAIL_THRESHOLD,
                                  format_scale_thresholds, parse_scale_thresholds)
from runespoor_common import graph
from runespoor_common.diagnostics import NodeStats, attach
from runespoor_common.imgconv import ImageEncodingError, image_to_labels
from runespoor_common.node_main import run_node
from runespoor_common.params import Param, declare, in_range, one_of, parses
from runespoor_common.qos import LABELS_IN_QOS, RELIABLE_QOS

PARAMS = [
    Param('small_region_area', DEFAULT_SMALL_REGION_AREA,
          'a region is small when its area / frame area is below this [fraction]', in_range(1e-6, 1.0)),
    Param('tail_threshold', DEFAULT_TAIL_THRESHOLD,
          'a frame is a tail frame when its small-region ratio is below (tail_rule) this [fraction]; used for '
          'scales without an entry in scale_thresholds', in_range(0.0, 1.0)),
    Param('tail_rule', 'below', "'below': tail when the ratio is below the threshold (the paper's rule); "
          "'above': when it is above (fitted where worse frames have more small regions)",
          one_of('below', 'above')),
    Param('scale_thresholds', '', 'per-scale thresholds "SCALE:FRACTION,..." for the scale the judged frame '
          'was sent at, e.g. "4:0.06,8:0.11"; empty = tail_threshold for every scale',
          parses(parse_scale_thresholds)),
    Param('downsample', DEFAULT_DOWNSAMPLE, 'label map subsampling before the analysis [factor]',
          in_range(1, 64)),
    Param('profile', '', 'CAC profile YAML whose tail_detector section (fitted by `runespoor profile`) sets '
          'the values above; a bare name = config/profiles/<name>.yaml; empty = use the parameters',
          read_only=True),
]


#: the profile's tail_detector keys this node takes (profile key; `rule` is the tail_rule parameter)
PROFILE_KEYS = ('small_region_area', 'tail_threshold', 'downsample', 'rule', 'scale_thresholds')


def check_config(values: dict) -> list[str]:
    """Start-up checks without ROS (runespoor launch / demo run them first): the profile loads."""
    if not values.get('profile'):
        return []
    try:
        load_profile(resolve_profile(values['profile']))
    except ProfileError as exc:
        return [str(exc)]
    return []


def stamp_key(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class TailDetectorNode(Node):
    def __init__(self, direct: bool = False, **kwargs):
        """`direct`: label maps arrive by calls to process() (single-process cloud), no subscription."""
        super().__init__('tail_detector', **kwargs)
        self.p = declare(self, PARAMS, on_change=self._on_params)
        if self.p['profile']:
            self._apply_profile(self.p['profile'])
        self.chain = CloudChain(tail=self._settings())  # this node runs the tail stage
        self.stats = NodeStats()
        self.infos: collections.OrderedDict = collections.OrderedDict()
        self.pub = self.create_publisher(TailReport, graph.TAIL_REPORT, RELIABLE_QOS)
        self.create_subscription(EncodedFrame, graph.FRAME_INFO, self.on_info, RELIABLE_QOS)
        if not direct:
            self.create_subscription(Image, graph.SEG_LABELS, self.on_labels, LABELS_IN_QOS)
        attach(self, self.stats)

    def _apply_profile(self, name: str) -> None:
        """Take the tail detector settings from a profile's tail_detector section; say which values come
        from the profile and which are the node's own (a section or key the profile lacks)."""
        profile = load_profile(resolve_profile(name))   # ProfileError names the file and the problem
        for note in profile.notes:
            self.get_logger().warning(note)
        td = profile.tail_detector
        taken, kept = [], []
        for key in PROFILE_KEYS:
            name_ = {'rule': 'tail_rule'}.get(key, key)
            if key in td:
                value = (format_scale_thresholds(parse_scale_thresholds(td[key]))
                         if key == 'scale_thresholds' else type(self.p[name_])(td[key]))
                self.p[name_] = value
                taken.append(f'{name_} {value}')
            else:
                kept.append(f'{name_} {self.p[name_]!r}')
        where = f'profile {profile.path}'
        if not td:
            self.get_logger().warning(f'{where} has no tail_detector section: using the node\'s parameters '
                                      f'(defaults unless set): {", ".join(kept)}')
            return
        self.get_logger().info(f'tail detector from {where}: {", ".join(taken)}'
                               + (f'; not in the profile, the node\'s parameters (defaults unless set): '
                                  f'{", ".join(kept)}' if kept else ''))

    def on_info(self, msg: EncodedFrame) -> None:
        self.infos[stamp_key(msg.header.stamp)] = msg
        while len(self.infos) > 200:
            self.infos.popitem(last=False)

    def on_labels(self, msg: Image) -> None:
        try:
            labels = image_to_labels(msg)
        except ImageEncodingError as exc:
            self.stats.error('encoding')
            self.get_logger().warning(f'rejected label map: {exc}', throttle_duration_sec=2.0)
            return
        self.process(labels, msg.header)

    def _settings(self) -> TailSettings:
        """The chain's tail settings from the parameters (per-scale thresholds parsed here, once per change,
        not per frame)."""
        return TailSettings(small_region_area=self.p['small_region_area'], tail_threshold=self.p['tail_threshold'],
                            downsample=int(self.p['downsample']), rule=self.p['tail_rule'],
                            scale_thresholds=parse_scale_thresholds(self.p['scale_thresholds']))

    def _on_params(self, changed: dict) -> None:
        self.chain.tail = self._settings()  # self.p already holds the changed values (validated)

    def threshold_for(self, scale: int | None) -> float:
        """The threshold for a frame sent at `scale` (None = unknown): its scale_thresholds entry, else
        tail_threshold."""
        return self.chain.tail.threshold_for(scale)

    def process(self, labels, header) -> TailReport:
        info = self.infos.get(stamp_key(header.stamp))
        r = self.chain.judge(labels, int(info.knobs.scale) if info is not None else None)
        report = TailReport(header=header, small_region_ratio=r.small_region_ratio,
                            tail_threshold=r.tail_threshold, small_region_area=r.small_region_area,
                            is_tail=r.is_tail, num_small_regions=r.num_small_regions,
                            num_regions=r.num_regions, downsample=r.downsample, detector_time_ms=r.time_ms)
        if info is not None:
            report.seq = info.seq
            report.knobs = info.knobs
        self.pub.publish(report)
        self.stats.frame(r.time_ms)
        self.stats.values['last_ratio'] = f'{r.small_region_ratio:.4f}'
        self.stats.values['tail_frames'] = str(int(self.stats.values.get('tail_frames', '0')) + r.is_tail)
        return report


def main(args=None):
    return run_node(TailDetectorNode, args)


if __name__ == '__main__':
    sys.exit(main())

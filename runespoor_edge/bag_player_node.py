"""bag_player: replays a rosbag2 (MCAP or sqlite3) at its recorded rate, where `ros2 bag play` is absent.

Publishes each chosen topic of the bag under its own name made relative (/camera/image_raw ->
camera/image_raw, so namespaces and remapping apply) with the serialized bytes straight from the bag:
images with sensor-data QoS, KnobConfig/ClassMap latched, anything else reliable. Timing and restamping
come from runespoor_edge.bagio.BagPlayback; the replay runs in a thread while the node spins.

Like a live camera by default: `restamp` (default true; launch argument `restamp:=false`, runner
`--restamp false`) maps header stamps onto the replay time, so they are current and keep increasing
across loops (`loop`); with `restamp: false` the bag's own stamps are kept and repeat on every loop
(said in the log).
"""
from __future__ import annotations

import sys
import threading
import time

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy

from runespoor_common import graph
from runespoor_common.node_main import is_shutdown_error, run_node
from runespoor_common.params import Param, declare, non_negative, positive
from runespoor_common.qos import replay_qos
from runespoor_edge import bagio


PARAMS = [
    Param('bag', '', 'rosbag2 folder to replay (required)', lambda v: None if v else 'must name a bag folder',
          read_only=True),
    Param('rate', 1.0, 'replay rate factor (2.0 = twice as fast)', positive, read_only=True),
    Param('loop', False, 'start again at the end', read_only=True),
    Param('start_offset', 0.0, 'skip this much of the bag at the start [s]', non_negative, read_only=True),
    Param('topics', [bagio.IMAGE_TOPIC, bagio.LABEL_TOPIC],
          'topics to replay (those absent from the bag are skipped); ["*"] = every topic', read_only=True),
    Param('restamp', True, 'map header stamps onto the current time, monotonic across loops, like a live camera; '
          "false = keep the bag's stamps (they repeat on every loop)", read_only=True),
    Param('wait_for_subscribers', 0, f'before starting, wait until {graph.CAMERA_IMAGE} has this many subscribers '
          '(at most wait_timeout_s; other topics get 2 s more to catch up) [count]', non_negative, read_only=True),
    Param('wait_timeout_s', 30.0, 'longest wait for subscribers [s]', non_negative, read_only=True),
    Param('reliable', False, 'publish images reliable (IMAGE_QOS) instead of sensor-data QoS: no loss of '
          'multi-MB frames between processes, at the cost of back-pressure', read_only=True),
    Param('exit_when_done', False, 'shut the node down at the end of the bag (no loop)', read_only=True),
]


def check_config(values: dict) -> list[str]:
    """Start-up checks without ROS (runespoor launch / demo run them first): the bag opens and holds at
    least one of the topics to replay."""
    if not values.get('bag'):
        return ["parameter 'bag': must name a bag folder (launch argument bag:=<folder>, runner --bag)"]
    try:
        reader = bagio.open_reader(values['bag'])
    except bagio.BagError as exc:
        return [str(exc)]
    try:
        available = sorted(c.topic for c in reader.connections)
    finally:
        reader.close()
    wanted = list(values.get('topics') or [])
    if wanted != ['*']:
        topics = [t if t.startswith('/') else '/' + t for t in wanted]
        if not any(t in available for t in topics):
            return [f'none of the topics {topics} is in {values["bag"]} (it has {available})']
    return []


class BagPlayer(Node):
    def __init__(self, **kwargs):
        super().__init__('bag_player', **kwargs)
        p = self.p = declare(self, PARAMS)
        wanted = list(p['topics'])
        try:
            reader = bagio.open_reader(p['bag'])
            available = {c.topic: c.msgtype for c in reader.connections}
            reader.close()
            topics = sorted(available) if wanted == ['*'] else [t if t.startswith('/') else '/' + t for t in wanted]
            missing = [t for t in topics if t not in available]
            if missing:
                self.get_logger().warning(f'not in {p["bag"]}, skipped: {missing}')
            topics = [t for t in topics if t in available]
            if not topics:
                raise ValueError(f'none of the topics {wanted} is in {p["bag"]} (it has {sorted(available)})')
            self.playback = bagio.BagPlayback(p['bag'], topics, rate=float(p['rate']), loop=bool(p['loop']),
                                              start_offset=float(p['start_offset']), restamp=bool(p['restamp']))
        except bagio.BagError as exc:
            raise ValueError(str(exc)) from exc
        if p['loop'] and not p['restamp']:
            self.get_logger().warning('loop with restamp false: the bag\'s stamps repeat on every loop '
                                      '(downstream latency and ordering see time go backwards)')
        self.pubs = {}
        for topic, msgtype in self.playback.topics.items():
            try:
                cls = bagio.message_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().warning(f'{topic}: message type {msgtype} is not installed; skipped')
                continue
            qos = replay_qos(msgtype, bool(p['reliable']))
            self.pubs[topic] = self.create_publisher(cls, topic.lstrip('/'), qos)
        if not self.pubs:
            raise ValueError('no topic of the bag can be published (message types missing)')
        self.published = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _wait_subscribers(self) -> None:
        """Wait (<= wait_timeout_s) until camera/image_raw (else every topic) has the subscribers asked for,
        then give the other topics up to 2 s more to catch up."""
        need = int(self.p['wait_for_subscribers'])
        if need <= 0:
            return
        main = [self.pubs[bagio.IMAGE_TOPIC]] if bagio.IMAGE_TOPIC in self.pubs else list(self.pubs.values())
        short = lambda pubs: [p for p in pubs if p.get_subscription_count() < need]  # noqa: E731
        deadline = time.monotonic() + float(self.p['wait_timeout_s'])
        while short(main) and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.05)
        for pub in short(main):
            self.get_logger().warning(f'{pub.topic_name}: only {pub.get_subscription_count()} of {need} '
                                      'subscribers after the wait; replaying anyway')
        grace = time.monotonic() + 2.0
        while short(self.pubs.values()) and time.monotonic() < grace and not self._stop.is_set():
            time.sleep(0.05)

    def _publish(self, item: bagio.PlayItem) -> None:
        pub = self.pubs.get(item.topic)
        if pub is not None:
            try:
                pub.publish(item.data)
            except Exception as exc:  # a publish racing the shutdown ends the replay, it is no error
                if self._stop.is_set() or is_shutdown_error(exc, self.context):
                    self._stop.set()
                    return
                raise
            self.published += 1

    def _run(self) -> None:
        try:
            self._wait_subscribers()
            pb = self.playback
            self.get_logger().info(
                f'replaying {pb.bag} ({", ".join(self.pubs)}) at x{pb.rate:g}'
                f'{", looping" if pb.loop else ""}{", restamped" if pb.restamp else ""}')
            n = pb.play(self._publish, stop=self._stop.is_set)
            if not self._stop.is_set():
                self._flush()
                self.get_logger().info(f'end of bag: {n} messages published')
        except Exception as exc:  # a broken bag file: say so, do not take the process down silently
            if not (self._stop.is_set() or is_shutdown_error(exc, self.context)):
                self.get_logger().error(f'replay failed: {exc}')
        finally:
            self.done.set()
            if self.p['exit_when_done'] and not self._stop.is_set():
                rclpy.try_shutdown(context=self.context)

    def _flush(self, timeout_s: float = 5.0) -> None:
        """Let the last messages reach the subscribers before the process may exit."""
        for pub in self.pubs.values():
            if pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                pub.wait_for_all_acked(Duration(seconds=timeout_s))
        time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def main(args=None):
    return run_node(lambda: BagPlayer(), args)


if __name__ == '__main__':
    sys.exit(main())

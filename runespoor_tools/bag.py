"""`runespoor bag convert|play|record|info`: rosbag2 tools that need no ROS 2 CLI.

  runespoor bag convert --format camvid --input ../shared/data/camvid --split val --out bags/camvid_val
  runespoor bag convert --format cityscapes --input ../shared/data/cityscapes --split val --out bags/cs
  runespoor bag convert --format video --input ../shared/data/video/solidWhiteRight.mp4 --out bags/video
  runespoor bag info bags/camvid_val
  runespoor bag play bags/camvid_val --rate 1.0 --loop --start-offset 2
  runespoor bag record --out runs/rec --topics /camera/image_raw /runespoor/uplink --duration 30
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runespoor_common import paths, rosenv
from runespoor_common.datasets import DatasetError
from runespoor_edge import bagio

# The ROS side (node_main, the player and recorder nodes) is imported by `play` and `record` only:
# `convert` and `info` run without rclpy (test_imgconv.py::test_edge_logic_modules_do_not_import_rclpy).


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='bag_command', metavar='ACTION', required=True)

    c = sub.add_parser('convert', help='convert a CamVid / Cityscapes split or a video file to a bag',
                       description='Writes sensor_msgs/Image on /camera/image_raw (+ the data set\'s label '
                                   'images, mono8, on /camera/labels with the same stamps).')
    c.add_argument('--format', required=True, choices=bagio.FORMATS, help='source layout')
    c.add_argument('--input', type=Path, default=None,
                   help='data set root (camvid/, cityscapes/) or video file (default: <data root>/<format>)')
    c.add_argument('--data-root', default=None, help='data root (default: $RUNESPOOR_DATA or ../shared/data)')
    c.add_argument('--split', default='val', help='train, val or test (default: val)')
    c.add_argument('--sequence', default=None,
                   help='only this sequence: CamVid prefix (0016E5), Cityscapes city or city_sequence')
    c.add_argument('--out', type=Path, required=True, help='bag folder to create')
    c.add_argument('--storage', choices=bagio.STORAGES, default='mcap', help='rosbag2 storage (default: mcap)')
    c.add_argument('--fps', type=float, default=None,
                   help='re-time the frames at this rate [frames/s] (default: the source numbering)')
    c.add_argument('--start-time', type=float, default=1.0, help='stamp of the first frame [s since epoch]')
    c.add_argument('--encoding', choices=('rgb8', 'bgr8'), default='rgb8', help='image encoding (default rgb8)')
    c.add_argument('--frame-id', default='camera', help='header frame_id (default: camera)')
    c.add_argument('--limit', type=int, default=None, help='convert at most this many frames')
    c.add_argument('--overwrite', action='store_true', help='replace --out if it exists')
    c.add_argument('--quiet', action='store_true', help='no progress bar')

    i = sub.add_parser('info', help='topics, counts, camera size/rate and custom data of a bag')
    i.add_argument('bag', type=Path)
    i.add_argument('--json', action='store_true', help='machine-readable output')

    p = sub.add_parser('play', help='replay a bag at its recorded rate (sensor-data QoS for images)')
    p.add_argument('bag', type=Path)
    p.add_argument('--rate', type=float, default=1.0, help='rate factor (default 1.0)')
    p.add_argument('--loop', action='store_true', help='start again at the end (until Ctrl-C)')
    p.add_argument('--start-offset', type=float, default=0.0, help='skip this much of the bag [s]')
    p.add_argument('--topics', nargs='+', default=['*'], help='topics to replay (default: all)')
    p.add_argument('--restamp', action=argparse.BooleanOptionalAction, default=True,
                   help='map header stamps onto the current time, monotonic across loops, like a live camera '
                        "(default; --no-restamp keeps the bag's stamps, which repeat on every loop)")
    p.add_argument('--wait-subscribers', type=int, default=0,
                   help='wait (<= 30 s) until /camera/image_raw has this many subscribers')
    p.add_argument('--reliable', action='store_true',
                   help='publish images reliable (no loss between processes) instead of sensor-data QoS')
    p.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: the environment\'s)')

    r = sub.add_parser('record', help='record topics to MCAP (the project\'s own types included)')
    r.add_argument('--out', type=Path, required=True, help='bag folder to create')
    r.add_argument('--topics', nargs='+', default=['*'], help='topics to record (default: all that appear)')
    r.add_argument('--storage', choices=bagio.STORAGES, default='mcap')
    r.add_argument('--duration', type=float, default=0.0, help='stop after this long [s] (default: Ctrl-C)')
    r.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: the environment\'s)')


def _ros_list(values) -> str:
    return '[' + ', '.join(f"'{v}'" for v in values) + ']'


def _run_node(factory, params: dict) -> int:
    from runespoor_common.node_main import run_node  # rclpy: see the note at the imports
    ros_args = ['runespoor', '--ros-args']
    for k, v in params.items():
        if isinstance(v, bool):
            v = 'true' if v else 'false'
        elif isinstance(v, (list, tuple)):
            v = _ros_list(v)
        elif isinstance(v, str):
            v = "'" + v.replace("'", "''") + "'"  # a YAML string, whatever it looks like
        ros_args += ['-p', f'{k}:={v}']
    return run_node(factory, ros_args)


def run(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except (bagio.BagError, DatasetError) as exc:   # a bad bag, or an unreadable data set frame
        print(f'runespoor bag {args.bag_command}: {exc}', file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    if args.bag_command == 'convert':
        src = args.input
        if src is None:
            root = paths.data_root(args.data_root)
            src = root / 'video' / 'solidWhiteRight.mp4' if args.format == 'video' else root / args.format
        info = bagio.convert(args.format, src, args.out, split=args.split, sequence=args.sequence,
                             storage=args.storage, fps=args.fps, start_time=args.start_time,
                             encoding=args.encoding, frame_id=args.frame_id, limit=args.limit,
                             overwrite=args.overwrite, progress=not args.quiet)
        print(bagio.format_info(info))
        return 0
    if args.bag_command == 'info':
        info = bagio.bag_summary(args.bag)
        print(json.dumps(info, indent=2) if args.json else bagio.format_info(info))
        return 0

    rosenv.apply_to_this_process(args.domain_id)
    if args.bag_command == 'play':
        from runespoor_edge.bag_player_node import BagPlayer  # rclpy: see the note at the imports
        bagio.BagPlayback(args.bag, None if args.topics == ['*'] else args.topics, rate=args.rate,
                          start_offset=args.start_offset)  # validate before starting ROS
        return _run_node(BagPlayer, {'bag': str(args.bag), 'rate': float(args.rate), 'loop': args.loop,
                                     'start_offset': float(args.start_offset), 'topics': args.topics,
                                     'restamp': args.restamp, 'reliable': args.reliable,
                                     'wait_for_subscribers': args.wait_subscribers,
                                     'exit_when_done': not args.loop})
    if args.bag_command == 'record':
        from runespoor_edge.recorder_node import BagRecorder  # rclpy: see the note at the imports
        if args.out.exists():
            raise bagio.BagError(f'{args.out} exists already; choose a new folder')
        return _run_node(BagRecorder, {'out': str(args.out), 'topics': args.topics, 'storage': args.storage,
                                       'duration_s': float(args.duration)})
    raise AssertionError(args.bag_command)

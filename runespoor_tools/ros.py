"""`runespoor ros`: the `ros2` verbs users reach for, on rclpy, for the pip-only route (no ROS install, so no
`ros2` command). Where the real `ros2` CLI is installed it is used as is (`runespoor ros topic list` runs
`ros2 topic list`); `--rclpy` forces this implementation.

    runespoor ros node list
    runespoor ros topic list [-t]
    runespoor ros topic echo /runespoor/knobs [--once | -n N] [--timeout S]
    runespoor ros topic hz /runespoor/uplink [--window N] [--duration S]
    runespoor ros param list /edge_streamer
    runespoor ros param get /edge_streamer scale
    runespoor ros param set /cac_controller bandwidth_source parameter
    runespoor ros param dump /edge_streamer            # YAML, loadable as a --params-file

Output follows `ros2` (`Double value is: 150.0`, `Set parameter successful`, `Setting parameter failed:
<reason>`), so the README's `ros2 param` / `ros2 topic` lines read the same on both routes. `bag info /
play / record` are `runespoor bag ...`. Discovery stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE) and the
domain is $ROS_DOMAIN_ID, like every runespoor process; set it to the one the nodes run in.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

#: how long the graph is watched before answering a list (the `ros2 --spin-time` of a daemon-less call)
SPIN_TIME_S = 2.0
#: how long `topic echo|hz` wait for a publisher of their topic to be discovered
PUBLISHER_WAIT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--rclpy', action='store_true', help='use this rclpy implementation even when ros2 exists')
    parser.add_argument('--spin-time', type=float, default=SPIN_TIME_S,
                        help=f'seconds to discover the graph before answering (default {SPIN_TIME_S:g})')
    sub = parser.add_subparsers(dest='verb', metavar='VERB', required=True)
    node = sub.add_parser('node', help='nodes').add_subparsers(dest='sub', required=True)
    node.add_parser('list', help='list the running nodes')
    topic = sub.add_parser('topic', help='topics').add_subparsers(dest='sub', required=True)
    tl = topic.add_parser('list', help='list the topics')
    tl.add_argument('-t', '--show-types', action='store_true', help='with their types')
    te = topic.add_parser('echo', help='print the messages of a topic')
    te.add_argument('topic')
    te.add_argument('--once', action='store_true', help='print one message and exit')
    te.add_argument('-n', '--count', type=int, default=0, help='exit after N messages (0 = run until Ctrl-C)')
    te.add_argument('--timeout', type=float, default=0.0, help='give up after S seconds without a message')
    te.add_argument('--no-arr', action='store_true', help='do not print array contents (images)')
    th = topic.add_parser('hz', help='the publishing rate of a topic')
    th.add_argument('topic')
    th.add_argument('-w', '--window', type=int, default=10000, help='messages in the statistics window')
    th.add_argument('--duration', type=float, default=0.0, help='stop after S seconds (0 = run until Ctrl-C)')
    param = sub.add_parser('param', help='parameters').add_subparsers(dest='sub', required=True)
    pl = param.add_parser('list', help='list the parameters of a node')
    pl.add_argument('node')
    pg = param.add_parser('get', help='the value of a parameter')
    pg.add_argument('node')
    pg.add_argument('name')
    ps = param.add_parser('set', help='set a parameter (VALUE read as YAML, like ros2: 150 is an integer, '
                                      '150.0 a float)')
    ps.add_argument('node')
    ps.add_argument('name')
    ps.add_argument('value')
    pd = param.add_parser('dump', help='every parameter of a node as YAML (a --params-file)')
    pd.add_argument('node')


def ros2_argv(args: argparse.Namespace) -> list[str]:
    """The `ros2` command line equivalent to `args`."""
    out = ['ros2', args.verb, args.sub]
    if args.verb == 'topic':
        if args.sub == 'list' and args.show_types:
            out.append('-t')
        if args.sub in ('echo', 'hz'):
            out.append(args.topic)
        if args.sub == 'echo':
            out += ['--once'] if args.once else []
            out += ['--no-arr'] if args.no_arr else []
        if args.sub == 'hz' and args.window != 10000:
            out += ['--window', str(args.window)]
    elif args.verb == 'param':
        out.append(args.node)
        if args.sub in ('get', 'set'):
            out.append(args.name)
        if args.sub == 'set':
            out.append(args.value)
    return out


def run(args: argparse.Namespace) -> int:
    if not args.rclpy and shutil.which('ros2'):
        # the real CLI as is; only flags it does not have (-n, --timeout, --duration) need --rclpy
        os.execvp('ros2', ros2_argv(args))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=['runespoor_ros'], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f'_runespoor_ros_{os.getpid()}', start_parameter_services=False)
    try:
        return VERBS[(args.verb, args.sub)](node, args)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


# ----------------------------------------------------------------------------------------------- helpers
def _spin(node, seconds: float) -> None:
    import rclpy
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))


def _discover(node, args, read):
    """`read()` of the graph after --spin-time of discovery (what a daemon-less `ros2` call does)."""
    _spin(node, max(0.0, args.spin_time))
    return read()


def _fqn(name: str) -> str:
    return name if name.startswith('/') else '/' + name


# ------------------------------------------------------------------------------------------------- node
def node_list(node, args) -> int:
    def read():
        return sorted({(ns.rstrip('/') + '/' + n) for n, ns in node.get_node_names_and_namespaces()
                       if not n.startswith('_')})
    for n in _discover(node, args, read):
        print(n)
    return 0


# ------------------------------------------------------------------------------------------------ topic
def topic_list(node, args) -> int:
    def read():
        return sorted((t, tuple(ty)) for t, ty in node.get_topic_names_and_types())
    for name, types in _discover(node, args, read):
        print(f'{name} [{", ".join(types)}]' if args.show_types else name)
    return 0


def _subscribe(node, args, callback):
    """Subscribe to args.topic with a QoS that matches its publishers (best effort when any publisher is,
    transient local when all are); returns the message class. Waits up to --spin-time for a publisher."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosidl_runtime_py.utilities import get_message
    topic = _fqn(args.topic)
    wait = max(args.spin_time, PUBLISHER_WAIT_S)
    deadline = time.monotonic() + wait
    infos = []
    while time.monotonic() < deadline:   # a publisher, not only a subscriber: its QoS decides ours
        infos = node.get_publishers_info_by_topic(topic)
        if infos:
            break
        _spin(node, 0.1)
    if not infos:
        raise SystemExit(f'runespoor ros topic {args.sub}: no publisher of {topic} found in {wait:g} s '
                         f'(ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")})')
    cls = get_message(infos[0].topic_type)
    qos = QoSProfile(depth=10)
    if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
        qos.reliability = ReliabilityPolicy.BEST_EFFORT
    if infos and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos):
        qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
    node.create_subscription(cls, topic, callback, qos)
    return cls


def topic_echo(node, args) -> int:
    import rclpy
    from rosidl_runtime_py.convert import message_to_yaml
    want = 1 if args.once else max(0, args.count)
    seen = [0, time.monotonic()]

    def on_msg(msg):
        if want and seen[0] >= want:
            return
        print(message_to_yaml(msg, no_arr=args.no_arr), end='---\n', flush=True)
        seen[0] += 1
        seen[1] = time.monotonic()

    _subscribe(node, args, on_msg)
    while not want or seen[0] < want:
        rclpy.spin_once(node, timeout_sec=0.1)
        if args.timeout and time.monotonic() - seen[1] > args.timeout:
            print(f'runespoor ros topic echo: no message on {_fqn(args.topic)} for {args.timeout:g} s',
                  file=sys.stderr)
            return 1
    return 0


def topic_hz(node, args) -> int:
    import rclpy
    stamps: list[float] = []
    _subscribe(node, args, lambda _msg: stamps.append(time.monotonic()))
    start = last_print = time.monotonic()
    while not args.duration or time.monotonic() - start < args.duration:
        rclpy.spin_once(node, timeout_sec=0.1)
        if time.monotonic() - last_print >= 1.0:
            last_print = time.monotonic()
            del stamps[:-args.window - 1]
            if len(stamps) < 2:
                print('no new messages')
                continue
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            mean = statistics.fmean(gaps)
            print(f'average rate: {1.0 / mean:.3f}\n\tmin: {min(gaps):.3f}s max: {max(gaps):.3f}s '
                  f'std dev: {statistics.pstdev(gaps):.5f}s window: {len(stamps)}', flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ param
def _client(node, args):
    from rclpy.parameter_client import AsyncParameterClient
    target = _fqn(args.node)
    client = AsyncParameterClient(node, target)
    if not client.wait_for_services(timeout_sec=max(args.spin_time, 5.0)):
        raise SystemExit(f'runespoor ros param {args.sub}: node {target} not found (no parameter services in '
                         f'{max(args.spin_time, 5.0):g} s; ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")})')
    return client


def _call(node, future, what: str, timeout: float = 10.0):
    import rclpy
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done() or future.result() is None:
        raise SystemExit(f'runespoor ros param: {what}: no answer in {timeout:g} s')
    return future.result()


_TYPE_WORDS = {1: 'Boolean', 2: 'Integer', 3: 'Double', 4: 'String', 5: 'Byte array', 6: 'Boolean array',
               7: 'Integer array', 8: 'Double array', 9: 'String array'}


def param_list(node, args) -> int:
    client = _client(node, args)
    res = _call(node, client.list_parameters(), f'list {args.node}')
    for name in sorted(res.result.names):
        print(f'  {name}')
    return 0


def param_get(node, args) -> int:
    from rclpy.parameter import parameter_value_to_python
    client = _client(node, args)
    res = _call(node, client.get_parameters([args.name]), f'get {args.name}')
    if not res.values or res.values[0].type == 0:
        print(f'Parameter not set.', file=sys.stderr)
        return 1
    v = res.values[0]
    print(f'{_TYPE_WORDS.get(v.type, "Unknown")} value is: {parameter_value_to_python(v)}')
    return 0


def param_set(node, args) -> int:
    import yaml
    from rclpy.parameter import Parameter
    try:
        value = yaml.safe_load(args.value)
    except yaml.YAMLError:
        value = args.value
    if value is None:
        value = args.value
    client = _client(node, args)
    try:
        param = Parameter(args.name, value=value)
    except (TypeError, ValueError) as exc:
        print(f'Setting parameter failed: {exc}')
        return 1
    res = _call(node, client.set_parameters([param]), f'set {args.name}')
    r = res.results[0]
    if r.successful:
        print('Set parameter successful')
        return 0
    print(f'Setting parameter failed: {r.reason}')
    return 1


def param_dump(node, args) -> int:
    import yaml
    from rclpy.parameter import parameter_value_to_python
    client = _client(node, args)
    names = sorted(_call(node, client.list_parameters(), f'list {args.node}').result.names)
    values = _call(node, client.get_parameters(names), f'get {args.node}').values if names else []
    params = {n: parameter_value_to_python(v) for n, v in zip(names, values)}
    print(yaml.safe_dump({_fqn(args.node): {'ros__parameters': params}}, sort_keys=True,
                         default_flow_style=False), end='')
    return 0


VERBS = {('node', 'list'): node_list, ('topic', 'list'): topic_list, ('topic', 'echo'): topic_echo,
         ('topic', 'hz'): topic_hz, ('param', 'list'): param_list, ('param', 'get'): param_get,
         ('param', 'set'): param_set, ('param', 'dump'): param_dump}

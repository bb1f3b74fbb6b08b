"""Parity of the two front ends: `runespoor launch ROLE` (pip-mode runner) and `ros2 launch runespoor
ROLE.launch.py` start the same nodes with the same parameters and remappings, compared with the real
`ros2 param dump` and `ros2 node info` (test/launch_helpers.py)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from launch_helpers import (RUNESPOOR, Launched, assert_clean_stop, fast_cloud_params, node_info, node_list,
                            param_dump, require_ros2, ros2_env, ros2_launch, small_bag, wait_until)
from runespoor_common import graph

pytestmark = [pytest.mark.ros, pytest.mark.slow]

#: the edge mirrors the knobs in force into these parameters: they follow the controller, not the front end
KNOB_MIRRORS = {'edge_streamer': {'scale', 'jpeg_quality', 'frame_rate'}}


def _snapshot(names: list[str], ns: str) -> dict:
    """node (without its namespace) -> its parameters and `ros2 node info` (namespace replaced by NS)."""
    def one(n):
        params = param_dump(n)
        for p in KNOB_MIRRORS.get(n.rsplit('/', 1)[-1], ()):
            params.pop(p, None)
        info = {k: [line.replace(f'/{ns}/', '/NS/') for line in v] for k, v in node_info(n).items()}
        return n.replace(f'/{ns}/', '/NS/'), {'params': params, 'info': info}
    with ThreadPoolExecutor(4) as pool:  # each `ros2` call mostly waits for discovery
        return dict(pool.map(one, names))


def test_runner_and_ros2_launch_start_the_same_graph(tmp_path):
    """The demo role (every node of every group) with the same arguments through both front ends, side by
    side in two namespaces of one domain."""
    require_ros2()
    bag = small_bag(tmp_path / 'bag', frames=4)
    cloud = fast_cloud_params(tmp_path / 'cloud.yaml', {('cac_controller', 'return_after'): 3})
    args = {'bag': str(bag), 'bandwidth': '3000', 'schedule': '0:3000,600:2000', 'device': 'cpu'}
    names = {ns: sorted(f'/{ns}/{s.name}' for s in graph.nodes_for('demo', include_external=False))
             for ns in ('by_runner', 'by_launch')}
    runner = Launched([str(RUNESPOOR), 'launch', 'demo', '--namespace', 'by_runner', '--params-file-cloud',
                       str(cloud)] + [x for k, v in args.items() for x in (f'--{k}', v)], env=ros2_env())
    la = ros2_launch('runespoor', 'demo.launch.py', 'namespace:=by_launch', f'params_file_cloud:={cloud}',
                     *[f'{k}:={v}' for k, v in args.items()])
    try:
        every = names['by_runner'] + names['by_launch']
        wait_until(lambda: set(every) <= set(node_list()), 300, f'nodes {every}',
                   diag=lambda: runner.output()[-3000:] + '\n' + la.output()[-3000:])
        by_runner = _snapshot(names['by_runner'], 'by_runner')
        by_launch = _snapshot(names['by_launch'], 'by_launch')
        assert runner.interrupt() == 0, runner.output()[-4000:]
        assert_clean_stop(la, la.interrupt())
        wait_until(lambda: not runner.left_over(), 60, 'runner processes gone')
    finally:
        runner.kill()
        la.kill()
    assert by_runner['/NS/edge_streamer']['params']['bandwidth_kbps'] == 3000.0
    assert by_runner['/NS/cac_controller']['params']['return_after'] == 3
    assert sorted(by_runner) == sorted(by_launch)
    for n in by_runner:
        assert by_runner[n]['params'] == by_launch[n]['params'], n
        assert by_runner[n]['info'] == by_launch[n]['info'], n

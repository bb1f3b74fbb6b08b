"""The transport section of `runespoor bench`: a pong process answers EncodedFrame and full-resolution
Image messages over DDS (loopback, a domain of this test's own). No timing assertions."""
import argparse

import pytest

pytestmark = pytest.mark.ros


def test_transport_round_trips_between_processes(ros_domain):
    from runespoor_tools import bench_ros
    res = bench_ros.transport(argparse.Namespace(quick=True, transport_reps=3, domain_id=ros_domain))
    assert 'error' not in res, res
    assert res['discovery_range'] == 'LOCALHOST' and res['domain_id'] == ros_domain
    rows = {(r['message'], r['payload']): r for r in res['rows']}
    assert set(rows) == {('EncodedFrame', '480x360 JPEG x4 q75'), ('EncodedFrame', '2048x1024 JPEG x1 q75'),
                         ('Image', '480x360 rgb8'), ('Image', '2048x1024 rgb8')}
    assert rows[('Image', '2048x1024 rgb8')]['bytes'] == 2048 * 1024 * 3
    for r in rows.values():
        assert r['one_way']['n'] + r['lost'] == r['sent']
        assert r['one_way']['n'] >= 1, r
        assert 0 < r['one_way']['median_ms'] <= r['round_trip']['median_ms']


def test_control_reaction_through_the_real_nodes(ros_domain):
    """A tail TailReport makes the real cac_controller publish the tail knobs and the real edge_streamer
    send its next frame with them; the bench times both spans (values not asserted)."""
    from runespoor_tools import bench_ros
    res = bench_ros.control(argparse.Namespace(quick=True, control_reps=2, domain_id=ros_domain))
    assert 'error' not in res, res
    assert res['failures'] == 0 and res['reaction']['n'] == 2 and res['controller']['n'] == 2
    assert res['controller']['median_ms'] > 0 and res['reaction']['median_ms'] > 0
    assert res['edge_apply']['n'] == 2 and res['domain_id'] == ros_domain

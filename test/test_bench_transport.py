"""The transport section of `runespoor bench`: a pong process answers EncodedFrame and full-resolution
Image messages over DDS (loopback, a domain of this test's own). No timing assertions."""
import argparse

import pytest

pytestmark = pytest.mark.ros


def test_transport_round_trips_between_processes(ros_domain):
    from runespoor_cloud import bench_ros
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

"""Cloud nodes over DDS, in process: restorer (size and stamp at every scale, bad frames, edge restarts),
segmentation (ESPNet labels, overlay, class map), tail detector (report per frame with the frame's seq and
knobs), controller (tail switch, bandwidth from LinkStats), diagnostics, and the single-process cloud."""
import numpy as np
import pytest

from conftest import wait_for, write_two_level_profile

pytestmark = pytest.mark.ros

FAST = ['2:bilinear,4:bilinear,6:bilinear,8:bilinear']


def spinner(ctx, *nodes):
    from rclpy.executors import SingleThreadedExecutor
    ex = SingleThreadedExecutor(context=ctx)
    for n in nodes:
        ex.add_node(n)
    return lambda: ex.spin_once(timeout_sec=0.02)


def params(**kw):
    from rclpy.parameter import Parameter
    return [Parameter(k, value=v) for k, v in kw.items()]


def key(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def camvid_frame(shared_dir, index=0, size=(240, 180)):
    import cv2
    from runespoor_common.datasets import list_samples, load_image
    rgb = load_image(list_samples('camvid', shared_dir / 'data', 'val')[index].image_path)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encoded_frame(rgb, scale, quality=90, seq=0, session=1, sec=1, config_id='test'):
    from runespoor.msg import EncodedFrame
    from runespoor_edge.codec import edge_encode
    msg = EncodedFrame(seq=seq, session_id=session, source_width=rgb.shape[1], source_height=rgb.shape[0])
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 250_000_000
    msg.header.frame_id = 'camera'
    msg.knobs.scale, msg.knobs.jpeg_quality, msg.knobs.config_id = scale, quality, config_id
    msg.image.format = 'jpeg'
    msg.image.data = edge_encode(rgb, scale, quality)
    return msg


@pytest.mark.parametrize('methods', [FAST[0], '2:sr,4:asr,6:asr,8:asr'])   # trained weights in models/
def test_restorer_every_scale_size_and_stamp(rclpy_context, shared_dir, methods):
    import rclpy
    from runespoor.msg import EncodedFrame
    from sensor_msgs.msg import Image
    from runespoor_cloud.restorer_node import RestorerNode
    from runespoor_common.imgconv import image_to_rgb
    from runespoor_common.qos import IMAGE_QOS, RELIABLE_QOS, SENSOR_QOS

    node = RestorerNode(context=rclpy_context, parameter_overrides=params(methods=methods, threads=1))
    t = rclpy.create_node('restorer_test', context=rclpy_context)
    spin = spinner(rclpy_context, node, t)
    restored, infos = {}, {}
    t.create_subscription(Image, 'runespoor/restored', lambda m: restored.setdefault(key(m.header.stamp), m),
                          IMAGE_QOS)
    t.create_subscription(EncodedFrame, 'runespoor/frame_info', lambda m: infos.setdefault(key(m.header.stamp), m),
                          RELIABLE_QOS)
    pub = t.create_publisher(EncodedFrame, 'runespoor/uplink', SENSOR_QOS)
    assert wait_for(lambda: pub.get_subscription_count() > 0 and node.pub.get_subscription_count() > 0, 60,
                    spin=spin)
    # 250x130 is not divisible by 4, 6 or 8: the JPEG is floor(source / scale), the output the source size
    rgb = camvid_frame(shared_dir, size=(250, 130))

    def send(msg):
        k = key(msg.header.stamp)
        for _ in range(120):                           # best effort in: publish until it comes back
            pub.publish(msg)
            if wait_for(lambda: k in restored, 0.5, spin=spin):
                return restored[k]
        raise AssertionError(f'no restored frame for stamp {k}')

    for i, scale in enumerate((1, 2, 4, 6, 8)):
        out = send(encoded_frame(rgb, scale, seq=i, sec=10 + i))
        assert (out.width, out.height, out.encoding) == (250, 130, 'rgb8')
        assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (10 + i, 250_000_000, 'camera')
        img = image_to_rgb(out)
        err = np.abs(img.astype(int) - rgb.astype(int)).mean()
        assert err < (4 if scale == 1 else 6 + 3 * scale), (scale, err)   # the same picture, restored
        assert wait_for(lambda: key(out.header.stamp) in infos, 30, spin=spin)
        info = infos[key(out.header.stamp)]
        assert info.seq == i and info.knobs.scale == scale and len(info.image.data) == 0
    # bad frames: rejected with a counter, the node keeps going
    bad = encoded_frame(rgb, 4, seq=5, sec=30)
    bad.image.data = b'\xff\xd8 not a jpeg'
    pub.publish(bad)
    assert wait_for(lambda: node.stats.errors['jpeg'] >= 1, 30, spin=spin)
    wrong = encoded_frame(rgb, 4, seq=6, sec=31)
    wrong.source_width = 100                            # JPEG is 62x32, 100x130 at x4 gives 25x32
    pub.publish(wrong)
    assert wait_for(lambda: node.stats.errors['size'] >= 1, 30, spin=spin)
    # an edge restart (new session, seq from 0) is noticed and frames keep flowing
    out = send(encoded_frame(rgb, 2, seq=0, session=2, sec=40))
    assert out.width == 250 and node.edge_restarts == 1
    t.destroy_node()
    node.destroy_node()


def test_segmentation_and_tail_detector_nodes(rclpy_context, shared_dir):
    import rclpy
    from runespoor.msg import ClassMap, EncodedFrame, TailReport
    from sensor_msgs.msg import Image
    from runespoor_cloud.segmentation_node import SegmentationNode
    from runespoor_cloud.tail import analyze
    from runespoor_cloud.tail_detector_node import TailDetectorNode
    from runespoor_common.imgconv import image_to_labels, image_to_rgb, rgb_to_image
    from runespoor_common.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS

    seg = SegmentationNode(context=rclpy_context, parameter_overrides=params(threads=1))
    tail = TailDetectorNode(context=rclpy_context, parameter_overrides=params(
        profile='', small_region_area=0.01, tail_threshold=0.02, downsample=2))
    t = rclpy.create_node('seg_test', context=rclpy_context)
    spin = spinner(rclpy_context, seg, tail, t)
    labels, overlays, reports, cmaps = [], [], [], []
    t.create_subscription(Image, 'runespoor/segmentation/labels', labels.append, IMAGE_QOS)
    t.create_subscription(Image, 'runespoor/segmentation/overlay', overlays.append, IMAGE_QOS)
    t.create_subscription(TailReport, 'runespoor/tail_report', reports.append, RELIABLE_QOS)
    t.create_subscription(ClassMap, 'runespoor/class_map', cmaps.append, LATCHED_QOS)  # joins late: latched
    img_pub = t.create_publisher(Image, 'runespoor/restored', IMAGE_QOS)
    info_pub = t.create_publisher(EncodedFrame, 'runespoor/frame_info', RELIABLE_QOS)
    assert wait_for(lambda: img_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0
                    and seg.overlay_pub.get_subscription_count() > 0 and cmaps, 60, spin=spin)
    cm = cmaps[0]
    assert cm.dataset == 'camvid' and cm.model == 'espnet' and cm.ignore_label == 255
    assert list(cm.class_names[:4]) == ['Sky', 'Building', 'Pole', 'Road'] and len(cm.colors_rgb) == 3 * 11

    rgb = camvid_frame(shared_dir, index=3)
    info = encoded_frame(rgb, 4, seq=17, sec=5, config_id='700kbps/standard')
    info.image.data = b''
    info_pub.publish(info)
    assert wait_for(lambda: tail.infos, 30, spin=spin)
    msg = rgb_to_image(rgb, 'rgb8', info.header)
    img_pub.publish(msg)
    assert wait_for(lambda: labels and overlays and reports, 30, spin=spin)
    lab = image_to_labels(labels[0])
    assert lab.shape == (180, 240) and labels[0].encoding == 'mono8'
    assert labels[0].header.stamp == info.header.stamp and labels[0].header.frame_id == 'camera'
    assert lab.max() < 11 and len(np.unique(lab)) >= 4          # a real street scene, several classes
    assert (lab == 3).mean() > 0.15                              # road
    ov = image_to_rgb(overlays[0])
    assert ov.shape == rgb.shape and overlays[0].header.stamp == info.header.stamp
    road = np.array(cm.colors_rgb[9:12], float)                  # the overlay is frame and road colour mixed
    expect = 0.5 * rgb[lab == 3].astype(float) + 0.5 * road
    assert np.abs(ov[lab == 3].astype(float) - expect).mean() < 1.5
    r = reports[0]
    ref = analyze(lab, 0.01, 0.02, downsample=2)
    assert r.header.stamp == info.header.stamp and r.seq == 17 and r.knobs.config_id == '700kbps/standard'
    assert r.small_region_ratio == pytest.approx(ref.small_region_ratio, abs=1e-7)
    assert (r.is_tail, r.num_regions, r.num_small_regions, r.downsample) == \
        (ref.is_tail, ref.num_regions, ref.num_small_regions, 2)
    # a featureless frame: one region, no small ones -> a tail frame, reported as such
    plain = np.full_like(rgb, 120)
    img_pub.publish(rgb_to_image(plain, 'rgb8', encoded_frame(plain, 4, sec=6).header))
    assert wait_for(lambda: len(reports) >= 2, 30, spin=spin)
    assert reports[1].is_tail and reports[1].small_region_ratio < 0.02 and reports[1].seq == 0
    assert reports[1].tail_threshold == pytest.approx(0.02)
    # per-scale thresholds and the 'above' rule, set at run time: the frame was sent at x4, so 4's entry applies
    from rclpy.parameter import Parameter
    res = tail.set_parameters([Parameter('scale_thresholds', value=f'4:{ref.small_region_ratio / 2:.6f},8:0.9'),
                               Parameter('tail_rule', value='above')])
    assert all(x.successful for x in res)
    assert not tail.set_parameters([Parameter('scale_thresholds', value='3:0.1')])[0].successful
    img_pub.publish(msg)
    assert wait_for(lambda: len(reports) >= 3, 30, spin=spin)
    assert reports[2].tail_threshold == pytest.approx(ref.small_region_ratio / 2, rel=1e-4)
    assert reports[2].is_tail and reports[2].seq == 17          # ratio above half itself: 'above' flags it
    # a wrong encoding is rejected with a counter, nothing published
    bad = rgb_to_image(rgb, 'rgb8', info.header)
    bad.encoding = '32FC1'
    img_pub.publish(bad)
    assert wait_for(lambda: seg.stats.errors['encoding'] >= 1, 30, spin=spin)
    for n in (t, tail, seg):
        n.destroy_node()


def test_controller_node_tail_switch_link_stats_and_diagnostics(rclpy_context, tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from runespoor.msg import KnobConfig, LinkStats, TailReport
    from runespoor_cloud.controller_node import ControllerNode
    from runespoor_common.qos import LATCHED_QOS, RELIABLE_QOS

    write_two_level_profile(tmp_path / 'p.yaml', frame_rate=10.0)
    ctl = ControllerNode(context=rclpy_context, parameter_overrides=params(
        profile=str(tmp_path / 'p.yaml'), return_after=2))
    t = rclpy.create_node('ctl_test', context=rclpy_context)
    spin = spinner(rclpy_context, ctl, t)
    knobs, diags = [], []
    t.create_subscription(KnobConfig, 'runespoor/knobs', knobs.append, LATCHED_QOS)
    t.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    rep_pub = t.create_publisher(TailReport, 'runespoor/tail_report', RELIABLE_QOS)
    link_pub = t.create_publisher(LinkStats, 'runespoor/link_stats', RELIABLE_QOS)
    assert wait_for(lambda: knobs and rep_pub.get_subscription_count() and link_pub.get_subscription_count(),
                    10, spin=spin)
    assert knobs[0].config_id == '700kbps/standard' and 'start' in knobs[0].reason   # latched start config
    link_pub.publish(LinkStats(role='cloud', bandwidth_kbps=100.0))                   # receiver side: ignored
    link_pub.publish(LinkStats(role='edge', bandwidth_kbps=500.0))
    assert wait_for(lambda: len(knobs) >= 2, 30, spin=spin)
    assert (knobs[1].config_id, knobs[1].scale) == ('350kbps/standard', 6) and 'bandwidth 500' in knobs[1].reason
    rep = TailReport(is_tail=True, small_region_ratio=0.003)
    rep.header.stamp = t.get_clock().now().to_msg()
    rep_pub.publish(rep)
    assert wait_for(lambda: len(knobs) >= 3, 30, spin=spin)
    k = knobs[2]
    assert (k.config_id, k.scale, k.jpeg_quality, k.tail_mode) == ('350kbps/tail', 4, 70, True)
    assert 'tail frame' in k.reason and len(ctl.cac.reaction_times) == 1 and 0 <= ctl.cac.reaction_times[0] < 60
    for _ in range(2):
        rep = TailReport(is_tail=False, small_region_ratio=0.05)
        rep.knobs.config_id = '350kbps/tail'
        rep_pub.publish(rep)
    assert wait_for(lambda: len(knobs) >= 4, 30, spin=spin)
    assert knobs[3].config_id == '350kbps/standard' and 'back to standard' in knobs[3].reason
    assert wait_for(lambda: any(s.name.endswith('cac_controller') and
                                {'config', 'reaction_ms_median', 'frames'} <= {v.key for v in s.values}
                                for d in diags for s in d.status), 30, spin=spin)
    wait_for(lambda: False, 0.3, spin=spin)
    ids = [k.config_id for k in knobs]
    assert len(ids) == 4 and all(a != b for a, b in zip(ids, ids[1:]))
    t.destroy_node()
    ctl.destroy_node()


def test_single_process_cloud_frame_to_tail_report(shared_dir, tmp_path):
    """cloud_process.build_nodes: restorer -> segmentation -> tail detector by direct calls, one report."""
    import rclpy
    from rclpy.context import Context
    from runespoor.msg import EncodedFrame, KnobConfig, TailReport
    from sensor_msgs.msg import Image
    from runespoor_cloud.cloud_process import build_nodes
    from runespoor_common.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

    write_two_level_profile(tmp_path / 'p.yaml', frame_rate=10.0)
    ctx = Context()
    rclpy.init(context=ctx, args=['--ros-args', '-p', f'restorer:methods:={FAST[0]}', '-p', 'restorer:threads:=1',
                                  '-p', 'segmentation:threads:=1', '-p', "tail_detector:profile:=''",
                                  '-p', f'cac_controller:profile:={tmp_path / "p.yaml"}'])
    try:
        nodes = build_nodes(ctx)
        assert [n.get_name() for n in nodes] == ['restorer', 'segmentation', 'tail_detector', 'cac_controller']
        t = rclpy.create_node('single_test', context=ctx)
        spin = spinner(ctx, *nodes, t)
        reports, labels, knobs = [], [], []
        t.create_subscription(TailReport, 'runespoor/tail_report', reports.append, RELIABLE_QOS)
        t.create_subscription(Image, 'runespoor/segmentation/labels', labels.append, IMAGE_QOS)
        t.create_subscription(KnobConfig, 'runespoor/knobs', knobs.append, LATCHED_QOS)
        pub = t.create_publisher(EncodedFrame, 'runespoor/uplink', SENSOR_QOS)
        assert wait_for(lambda: pub.get_subscription_count() > 0 and knobs, 60, spin=spin)
        msg = encoded_frame(camvid_frame(shared_dir), 4, seq=3, sec=8, config_id='700kbps/standard')
        for _ in range(120):
            pub.publish(msg)
            if wait_for(lambda: reports, 1.0, spin=spin):
                break
        assert reports and reports[0].seq == 3 and reports[0].knobs.scale == 4
        assert reports[0].header.stamp == msg.header.stamp
        assert wait_for(lambda: labels, 30, spin=spin) and (labels[0].width, labels[0].height) == (240, 180)
        assert nodes[0].stats.frames >= 1 and nodes[1].stats.frames >= 1
        t.destroy_node()
        for n in nodes:
            n.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)

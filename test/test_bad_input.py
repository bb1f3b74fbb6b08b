"""Bad input into running nodes (in-process, over DDS): each bad frame / camera image / KnobConfig /
parameter is rejected with a specific log line and a diagnostics counter, and the next good input is
still processed."""
import math

import numpy as np
import pytest
import torch

from conftest import wait_for

pytestmark = pytest.mark.ros
torch.set_num_threads(1)
W, H = 96, 64


def good_frame(scale=2, seq=0, session=7):
    from runespoor.msg import EncodedFrame
    from runespoor_edge.codec import edge_encode
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : W // 2] = (200, 40, 40)
    msg = EncodedFrame(seq=seq, session_id=session, source_width=W, source_height=H)
    msg.knobs.scale, msg.knobs.jpeg_quality = scale, 75
    msg.image.format = 'jpeg'
    msg.image.data = edge_encode(rgb, scale, 75)
    return msg


def _set(**fields):
    def apply(m):
        for k, v in fields.items():
            obj = m
            *path, last = k.split('.')
            for part in path:
                obj = getattr(obj, part)
            setattr(obj, last, v)
        return m
    return apply


def _data(fn):
    def apply(m):
        m.image.data = fn(bytes(m.image.data))
        return m
    return apply


# (counter kind, change to a good frame, expected words in the log line)
BAD_FRAMES = [
    ('jpeg', _data(lambda d: d[: len(d) // 2]), 'truncated (no EOI marker)'),
    ('jpeg', _data(lambda d: b'\x00' * 8 + d[8:]), 'not a JPEG (no SOI marker)'),
    ('jpeg', _data(lambda d: d[:200] + bytes(255 - b for b in d[200:-2]) + d[-2:]), 'corrupt JPEG'),
    ('empty', _data(lambda d: b''), 'empty JPEG payload'),
    ('format', _set(**{'image.format': 'png'}), "format 'png' is not JPEG"),
    ('scale', _set(**{'knobs.scale': 3}), 'scale 3 is not one of'),
    ('no_model', lambda m: good_frame(scale=6), 'no restoration model configured for x6'),
    ('source_size', _set(source_width=0), 'source size 0x64 is zero or absurd'),
    ('source_size', _set(source_width=4_000_000_000, source_height=9), 'is zero or absurd'),
    ('source_size', _set(source_width=1, **{'knobs.scale': 2}), 'too small for x2'),
    ('size', _set(source_width=2 * W), 'JPEG header says 48x32, expected 96x32'),
]


def test_restorer_rejects_each_bad_frame_and_processes_the_next(rclpy_context, capfd):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from runespoor.msg import EncodedFrame
    from runespoor_cloud.restorer_node import RestorerNode
    from runespoor_common.qos import RELIABLE_QOS, SENSOR_QOS

    node = RestorerNode(context=rclpy_context, parameter_overrides=[
        Parameter('methods', value='2:bilinear,4:bilinear,8:bilinear')])
    test = rclpy.create_node('bad_frames', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    ex.add_node(test)
    infos, diags = [], []
    test.create_subscription(EncodedFrame, 'runespoor/frame_info', infos.append, RELIABLE_QOS)
    test.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    pub = test.create_publisher(EncodedFrame, 'runespoor/uplink', SENSOR_QOS)
    spin = lambda: ex.spin_once(timeout_sec=0.02)  # noqa: E731
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, 60, spin=spin)
        seq = 0

        def send_until(msg, done):
            for _ in range(120):  # best effort: resend until seen
                pub.publish(msg)
                if wait_for(done, 0.5, spin=spin):
                    return True
            return False

        assert send_until(good_frame(seq=seq), lambda: len(infos) == 1)
        expected = {}
        for kind, change, words in BAD_FRAMES:
            seq += 1
            before = node.stats.errors[kind]
            assert send_until(change(good_frame(seq=seq)), lambda: node.stats.errors[kind] > before), kind
            expected[kind] = expected.get(kind, 0) + 1
            # the next good frame is processed
            seq += 1
            n = len(infos)
            assert send_until(good_frame(seq=seq), lambda: len(infos) > n), f'no frame after {kind}'
            assert infos[-1].seq == seq
        assert dict(node.stats.errors) == expected
        # the counters reach /diagnostics
        assert wait_for(lambda: any(kv.key == 'rejected_source_size' and kv.value == '3'
                                    for d in diags for s in d.status for kv in s.values), 30, spin=spin)
        # a specific log line per kind (throttled per kind, so every first occurrence shows)
        log = capfd.readouterr().err
        for kind, _, words in BAD_FRAMES:
            if expected[kind] and f'rejected frame ({kind}, 1 so far)' in log:
                continue
            pytest.fail(f'no log line for {kind}: {log[-2000:]}')
        for kind, _, words in BAD_FRAMES[:1] + BAD_FRAMES[3:8] + BAD_FRAMES[10:]:
            assert words in log, (words, log[-2000:])
        assert 'Traceback' not in log
    finally:
        node.destroy_node()
        test.destroy_node()


BAD_IMAGES = [
    dict(encoding='yuv422_yuy2'),
    dict(encoding='32FC1'),
    dict(encoding='rgb8', data_len=10),           # data shorter than height x step
    dict(encoding='rgb8', step=10),               # step smaller than a row
    dict(encoding='rgb8', width=0),               # empty size
]

BAD_KNOBS = [
    dict(frame_rate=math.nan), dict(frame_rate=math.inf), dict(frame_rate=1e30), dict(frame_rate=-1.0),
    dict(scale=3), dict(scale=255), dict(jpeg_quality=255), dict(jpeg_quality=0),
    dict(bandwidth_kbps=math.nan), dict(bandwidth_kbps=-math.inf),
]


def test_edge_rejects_bad_camera_images_knobs_and_parameters(rclpy_context, capfd):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from runespoor.msg import EncodedFrame, KnobConfig
    from sensor_msgs.msg import Image
    from runespoor_common.imgconv import rgb_to_image
    from runespoor_common.params import ParameterError
    from runespoor_common.qos import LATCHED_QOS, SENSOR_QOS
    from runespoor_edge.streamer_node import EdgeStreamer

    # out-of-range start-up parameters: the node refuses to start, naming the parameter
    for name, value in [('scale', 3), ('jpeg_quality', 200), ('frame_rate', math.nan), ('max_queue', -1),
                        ('schedule', '0:abc'), ('knob_timeout_s', -1.0)]:
        with pytest.raises(ParameterError, match=f"parameter '{name}'"):
            EdgeStreamer(context=rclpy_context, parameter_overrides=[Parameter(name, value=value)])

    node = EdgeStreamer(context=rclpy_context, parameter_overrides=[Parameter('bandwidth_kbps', value=0.0)])
    test = rclpy.create_node('bad_input', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    ex.add_node(test)
    sent = []
    test.create_subscription(EncodedFrame, 'runespoor/uplink', sent.append, SENSOR_QOS)
    cam = test.create_publisher(Image, 'camera/image_raw', SENSOR_QOS)
    knob_pub = test.create_publisher(KnobConfig, 'runespoor/knobs', LATCHED_QOS)
    spin = lambda: ex.spin_once(timeout_sec=0.02)  # noqa: E731
    good = rgb_to_image(np.full((H, W, 3), 90, np.uint8), 'rgb8')
    try:
        assert wait_for(lambda: cam.get_subscription_count() > 0 and len(sent) >= 0, 60, spin=spin)

        def send_image(msg, done):
            for _ in range(120):
                cam.publish(msg)
                if wait_for(done, 0.5, spin=spin):
                    return True
            return False

        assert send_image(good, lambda: len(sent) >= 1)
        for i, bad in enumerate(BAD_IMAGES):
            msg = rgb_to_image(np.full((H, W, 3), 90, np.uint8), 'rgb8')
            msg.encoding = bad['encoding']
            msg.step = bad.get('step', msg.step)
            msg.width = bad.get('width', msg.width)
            if 'data_len' in bad:
                msg.data = bytes(bad['data_len'])
            assert send_image(msg, lambda: node.stats.errors['camera_encoding'] > i), bad
            n = len(sent)
            assert send_image(good, lambda: len(sent) > n), f'no frame after {bad}'
        assert node.stats.errors['camera_encoding'] == len(BAD_IMAGES)
        assert node.stats.key_values()['rejected_camera_encoding'] == str(len(BAD_IMAGES))

        # NaN / huge / out-of-range KnobConfigs are rejected and the knobs in force stay
        def knobs(**kw):
            base = dict(scale=2, jpeg_quality=60, frame_rate=0.0, bandwidth_kbps=1000.0, config_id='test')
            base.update(kw)
            return KnobConfig(**base)
        knob_pub.publish(knobs(config_id='good-1'))
        assert wait_for(lambda: node.streamer.knobs.config_id == 'good-1', 60, spin=spin)
        for i, bad in enumerate(BAD_KNOBS):
            knob_pub.publish(knobs(config_id=f'bad-{i}', **bad))
            assert wait_for(lambda: node.stats.errors['knobs'] > i, 30, spin=spin), bad
            assert node.streamer.knobs.config_id == 'good-1'
        knob_pub.publish(knobs(config_id='good-2', scale=4))
        assert wait_for(lambda: node.streamer.knobs.config_id == 'good-2', 60, spin=spin)
        n = len(sent)
        assert send_image(good, lambda: len(sent) > n and sent[-1].knobs.config_id == 'good-2')
        assert sent[-1].knobs.scale == 4 and node.get_parameter('scale').value == 4

        # out-of-range parameter changes are refused with the reason; the knobs stay
        for name, value in [('scale', 3), ('jpeg_quality', 20), ('frame_rate', math.inf), ('max_queue', -2),
                            ('bandwidth_kbps', -5.0), ('schedule', '5:100'), ('max_queue_delay_s', 0.0)]:
            res = node.set_parameters([Parameter(name, value=value)])[0]
            assert not res.successful and res.reason.startswith(f'{name}: '), (name, res.reason)
        assert node.streamer.knobs.scale == 4 and node.streamer.link.max_queue == 3

        log = capfd.readouterr().err
        assert "camera frame rejected (1 so far): unsupported image encoding 'yuv422_yuy2'" in log, log[-3000:]
        assert "KnobConfig 'bad-0' rejected (1 so far), keeping x2 q60" in log
        assert 'frame_rate must be a finite number' in log
        assert "rejected scale=3: must be one of" in log
        assert 'Traceback' not in log
    finally:
        node.destroy_node()
        test.destroy_node()

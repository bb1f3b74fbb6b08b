"""sensor_msgs/Image <-> NumPy (runespoor_common.imgconv) without rclpy, on the route in use (the real cv_bridge
when installed, else the stand-in), and the stand-in against cv_bridge's recorded behaviour
(../shared/cv_bridge-kit/verified.txt), which runs everywhere. Side-by-side parity: test_cv_bridge_parity.py."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import Image

from runespoor_common import imgconv
from runespoor_common.imgconv import (GENERIC_AS_COLOR, CvBridgeError, ImageEncodingError, StandInCvBridge,
                                      StandInCvBridgeError, image_to_array, image_to_labels, image_to_rgb,
                                      labels_to_image, rgb_to_image)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def make(arr, encoding, pad=0, big=False):
    arr = np.ascontiguousarray(arr)
    rows = arr.reshape(arr.shape[0], -1).view(np.uint8) if arr.dtype.itemsize == 1 else \
        arr.astype(arr.dtype.newbyteorder('>' if big else '<')).reshape(arr.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 77, np.uint8)], axis=1)
    return Image(height=arr.shape[0], width=arr.shape[1], encoding=encoding, step=rows.shape[1],
                 is_bigendian=int(big), data=rows.tobytes())


A = np.full((5, 7), 9, np.uint8)
COLOR_CASES = [('rgb8', RGB), ('bgr8', RGB[:, :, ::-1]), ('rgba8', np.dstack([RGB, A])),
               ('bgra8', np.dstack([RGB[:, :, ::-1], A]))]
GENERIC_CASES = [('8UC3', RGB[:, :, ::-1]), ('8UC4', np.dstack([RGB[:, :, ::-1], A]))]


@pytest.mark.parametrize('encoding,arr', COLOR_CASES + GENERIC_CASES)
@pytest.mark.parametrize('pad', [0, 3, 5])  # 5: not a multiple of the pixel size, read right all the same
def test_color_encodings_to_rgb(encoding, arr, pad):
    generic = encoding in GENERIC_AS_COLOR
    out = image_to_rgb(make(arr, encoding, pad), generic_as_color=generic)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and np.array_equal(out, RGB)
    assert out.flags.c_contiguous


@pytest.mark.parametrize('encoding', ['8UC3', '8UC4', '8UC1', '16UC1'])
def test_generic_encodings_need_the_named_option(encoding):
    """cv_bridge refuses 8UC3 -> rgb8 ("not a color format"); the project reads it as bgr8 only when asked."""
    arr = {'8UC3': RGB, '8UC4': np.dstack([RGB, A]), '8UC1': A, '16UC1': A.astype(np.uint16)}[encoding]
    with pytest.raises(ImageEncodingError, match=f"'{encoding}' carries no colour order.*generic_as_color"):
        image_to_rgb(make(arr, encoding))
    assert image_to_rgb(make(arr, encoding), generic_as_color=True).shape == (5, 7, 3)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8(encoding):
    g = RGB[:, :, 0]
    out = image_to_rgb(make(g, encoding, pad=1), generic_as_color=encoding == '8UC1')
    assert np.array_equal(out, np.dstack([g, g, g]))
    assert np.array_equal(image_to_labels(make(g, encoding)), g)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('pad', [0, 2, 1])
def test_mono16_scaled_to_8_bit_like_cv_bridge(encoding, big, pad):
    """16 -> 8 bit is cv_bridge's round(x * 255 / 65535), not x >> 8 (they differ by 1 on 16256 values)."""
    d = np.array([[0, 128, 255, 256], [32767, 32768, 65280, 65535]], np.uint16)
    out = image_to_rgb(make(d, encoding, pad=pad, big=big), generic_as_color=encoding == '16UC1')
    assert out[:, :, 1].tolist() == [[0, 0, 1, 1], [127, 128, 254, 255]]
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    arr = image_to_array(make(d, encoding, big=big, pad=pad))
    assert arr.dtype == np.uint16 and np.array_equal(arr, d)


def test_errors_are_specific():
    with pytest.raises(ImageEncodingError, match="unsupported image encoding '32FC1'"):
        image_to_rgb(Image(height=1, width=1, encoding='32FC1', step=4, data=bytes(4)))
    with pytest.raises(ImageEncodingError, match='step 20 is smaller than a row'):
        image_to_rgb(Image(height=5, width=7, encoding='rgb8', step=20, data=bytes(200)))
    with pytest.raises(ImageEncodingError, match='data has 104 bytes, expected 105'):
        image_to_rgb(Image(height=5, width=7, encoding='rgb8', step=21, data=bytes(104)))
    with pytest.raises(ImageEncodingError, match='empty size'):
        image_to_rgb(Image(height=0, width=7, encoding='rgb8', step=21))
    with pytest.raises(ImageEncodingError, match='mono8 or 8UC1'):
        image_to_labels(make(RGB, 'rgb8'))
    with pytest.raises(ImageEncodingError):
        rgb_to_image(RGB.astype(np.float32))
    with pytest.raises(ImageEncodingError):
        labels_to_image(RGB)
    with pytest.raises(ImageEncodingError, match="unsupported image encoding 'foo'"):
        image_to_array(Image(height=1, width=1, encoding='foo', step=4, data=bytes(4)))
    assert issubclass(ImageEncodingError, ValueError) and issubclass(ImageEncodingError, CvBridgeError)


def test_writers_round_trip():
    for enc in ('rgb8', 'bgr8'):
        msg = rgb_to_image(RGB, enc)
        assert (msg.encoding, msg.width, msg.height, msg.step) == (enc, 7, 5, 21)
        assert np.array_equal(image_to_rgb(msg), RGB)
    lab = RNG.integers(0, 12, (6, 9), dtype=np.uint8)
    msg = labels_to_image(lab)
    assert msg.encoding == 'mono8' and msg.step == 9 and np.array_equal(image_to_labels(msg), lab)
    # a non-contiguous view is written correctly
    assert np.array_equal(image_to_rgb(rgb_to_image(RGB[:, ::2])), RGB[:, ::2])


def test_writers_are_cv_bridge_messages():
    b = imgconv.bridge()
    assert rgb_to_image(RGB, 'rgb8') == b.cv2_to_imgmsg(RGB, 'rgb8')
    assert rgb_to_image(RGB, 'bgr8') == b.cv2_to_imgmsg(np.ascontiguousarray(RGB[:, :, ::-1]), 'bgr8')
    assert labels_to_image(A) == b.cv2_to_imgmsg(A, 'mono8')


def test_hot_path_makes_no_copy():
    """A 2048x1024 rgb8 frame comes back as a view of msg.data (timings: runespoor bench, section imgconv)."""
    big = RNG.integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    msg = rgb_to_image(big, 'rgb8')
    back = image_to_rgb(msg)
    assert np.shares_memory(back, np.frombuffer(msg.data, np.uint8)) and np.array_equal(back, big)
    assert np.array_equal(image_to_rgb(rgb_to_image(big, 'bgr8')), big)


# ------------------------------------------------------------------ the stand-in, on every machine
# Expected values: what the real cv_bridge does, recorded in ../shared/cv_bridge-kit/verified.txt.
SB = StandInCvBridge()


def test_stand_in_defaults_and_type_checks():
    u8c3 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for arr, enc in [(u8c3, '8UC3'), (np.dstack([u8c3, A]), '8UC4'), (A, '8UC1'), (A.astype(np.uint16), '16UC1'),
                     (A.astype(np.float32), '32FC1'), (np.zeros((2, 2, 2)), '64FC2')]:
        msg = SB.cv2_to_imgmsg(arr)
        assert msg.encoding == enc and msg.step == arr[0].nbytes and np.array_equal(SB.imgmsg_to_cv2(msg), arr)
    with pytest.raises(StandInCvBridgeError, match='encoding specified as mono8, but image has incompatible type 8UC3'):
        SB.cv2_to_imgmsg(u8c3, 'mono8')
    with pytest.raises(TypeError, match='not a numpy array'):
        SB.cv2_to_imgmsg([[1]])
    with pytest.raises(StandInCvBridgeError, match='Unknown encoding foo'):
        SB.imgmsg_to_cv2(SB.cv2_to_imgmsg(u8c3, 'bgr8'), 'foo')
    with pytest.raises(StandInCvBridgeError, match=r'\[8UC3\] is not a color format. but \[bgr8\] is'):
        SB.imgmsg_to_cv2(SB.cv2_to_imgmsg(u8c3, '8UC3'), 'bgr8')
    assert issubclass(StandInCvBridgeError, TypeError)


def test_stand_in_conversions():
    x = np.array([[0, 128, 255, 256, 32767, 32768, 65280, 65535]], np.uint16)
    assert SB.imgmsg_to_cv2(SB.cv2_to_imgmsg(x, 'mono16'), 'mono8').tolist() == [[0, 0, 1, 1, 127, 128, 254, 255]]
    assert SB.imgmsg_to_cv2(SB.cv2_to_imgmsg(x, '16UC1'), '8UC1').tolist() == [[0, 0, 1, 1, 127, 128, 254, 255]]
    g = np.array([[0, 1, 255]], np.uint8)
    assert SB.imgmsg_to_cv2(SB.cv2_to_imgmsg(g, 'mono8'), 'mono16').tolist() == [[0, 257, 65535]]
    f = np.array([[0.4, 1.5, 2.5, 300, -1]], np.float32)
    assert SB.imgmsg_to_cv2(SB.cv2_to_imgmsg(f, '32FC1'), '8UC1').tolist() == [[0, 2, 2, 255, 0]]
    bgr = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    m = SB.cv2_to_imgmsg(bgr, 'bgr8')
    gray = np.round(bgr[..., 2] * 0.299 + bgr[..., 1] * 0.587 + bgr[..., 0] * 0.114)
    assert np.abs(SB.imgmsg_to_cv2(m, 'mono8').astype(int) - gray).max() <= 1
    assert (SB.imgmsg_to_cv2(m, 'bgra8')[..., 3] == 255).all()
    out = SB.imgmsg_to_cv2(m)
    assert out.flags.writeable and np.array_equal(SB.imgmsg_to_cv2(m, 'rgb8'), bgr[..., ::-1])


def test_stand_in_compressed():
    bgr = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    m = SB.cv2_to_compressed_imgmsg(bgr, 'png')
    assert m.format == 'png' and np.array_equal(SB.compressed_imgmsg_to_cv2(m), bgr)
    assert np.array_equal(SB.compressed_imgmsg_to_cv2(m, 'rgb8'), bgr[..., ::-1])
    assert SB.cv2_to_compressed_imgmsg(bgr).format == 'jpg'
    gray = SB.cv2_to_compressed_imgmsg(A, 'png')
    assert np.array_equal(SB.compressed_imgmsg_to_cv2(gray), A)
    with pytest.raises(StandInCvBridgeError):
        SB.compressed_imgmsg_to_cv2(gray, 'mono8')  # cv_bridge takes every decoded image as bgr8


def test_route_can_be_forced():
    code = 'from runespoor_common import imgconv as i; print(i.BACKEND, i.CvBridge.__name__)'
    env = {**os.environ, 'RUNESPOOR_CV_BRIDGE': 'standin'}
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, env=env,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0 and res.stdout.split() == ['stand-in', 'StandInCvBridge'], res.stderr


def test_edge_logic_modules_do_not_import_rclpy():
    mods = ['runespoor_common.imgconv', 'runespoor_edge.knobs', 'runespoor_edge.link', 'runespoor_edge.streamer',
            'runespoor_edge.bagio', 'runespoor_tools.bag']
    code = f"import sys, {', '.join(mods)}; bad = [m for m in sys.modules if m.startswith('rclpy')]; " \
           "sys.exit(f'rclpy imported: {bad}' if bad else 0)"
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr


def test_uplink_jpeg_reads_the_same_through_cv_bridge():
    """A ROS tool reading the uplink JPEG with cv_bridge gets the codec's pixels."""
    from sensor_msgs.msg import CompressedImage

    from runespoor_edge.codec import decode_jpeg, edge_encode
    rgb = RNG.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    data = edge_encode(rgb, 2, 75)
    msg = CompressedImage(format='jpeg')
    msg.data.frombytes(data)
    assert np.array_equal(imgconv.bridge().compressed_imgmsg_to_cv2(msg, 'rgb8'), decode_jpeg(data))

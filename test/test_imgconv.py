"""sensor_msgs/Image <-> NumPy (runespoor_common.imgconv) without rclpy."""
import sys

import numpy as np
import pytest
from sensor_msgs.msg import Image

from runespoor_common.imgconv import (ImageEncodingError, image_to_array, image_to_labels, image_to_rgb,
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


@pytest.mark.parametrize('encoding,arr', [
    ('rgb8', RGB), ('bgr8', RGB[:, :, ::-1]), ('8UC3', RGB[:, :, ::-1]),
    ('rgba8', np.dstack([RGB, np.full((5, 7), 9, np.uint8)])),
    ('bgra8', np.dstack([RGB[:, :, ::-1], np.full((5, 7), 9, np.uint8)])),
])
@pytest.mark.parametrize('pad', [0, 3])
def test_color_encodings_to_rgb(encoding, arr, pad):
    out = image_to_rgb(make(arr, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and np.array_equal(out, RGB)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8(encoding):
    g = RGB[:, :, 0]
    out = image_to_rgb(make(g, encoding, pad=1))
    assert np.array_equal(out, np.dstack([g, g, g]))
    assert np.array_equal(image_to_labels(make(g, encoding)), g)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('big', [False, True])
def test_mono16_scaled_to_8_bit(encoding, big):
    d = np.array([[0, 255, 256, 65535], [1000, 32768, 40000, 65280]], np.uint16)
    out = image_to_rgb(make(d, encoding, pad=2, big=big))
    assert np.array_equal(out[:, :, 1], (d // 256).astype(np.uint8))
    assert image_to_array(make(d, encoding, big=big)).dtype == np.uint16


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
    assert issubclass(ImageEncodingError, ValueError)


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


def test_large_frame_is_fast():
    import time
    big = RNG.integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    t = time.perf_counter()
    msg = rgb_to_image(big, 'bgr8')
    back = image_to_rgb(msg)
    assert time.perf_counter() - t < 0.5 and np.array_equal(back, big)


def test_edge_logic_modules_do_not_import_rclpy():
    import subprocess
    mods = ['runespoor_common.imgconv', 'runespoor_edge.knobs', 'runespoor_edge.link', 'runespoor_edge.streamer',
            'runespoor_edge.bagio', 'runespoor_tools.bag']
    code = f"import sys, {', '.join(mods)}; bad = [m for m in sys.modules if m.startswith('rclpy')]; " \
           "sys.exit(f'rclpy imported: {bad}' if bad else 0)"
    from pathlib import Path
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr

"""The stand-in (runespoor_common.imgconv.StandInCvBridge) against the real ROS 2 cv_bridge, side by side.

Generated images (hypothesis) of every encoding the nodes accept, every desired encoding among them (and a
few more), padded rows (also by byte counts that are not a multiple of the pixel size), big-endian data,
NaN/inf/huge floats; `cv2_to_imgmsg` of generated arrays with every encoding; compressed jpg/png both ways.
Both must give the same arrays (dtype, shape, values) or messages, or refuse with the same exception
(CvBridgeError on both sides, with the same text unless OpenCV wrote it: its version differs).

Needs the real cv_bridge (a ROS 2 installation, or `make setup` with ../shared/cv_bridge-kit beside the
checkout); skipped, with the reason, only where it does not import.
"""
import numpy as np
import pytest

try:
    import cv_bridge
except ModuleNotFoundError:
    pytest.skip('the real cv_bridge is not installed (no ROS 2 cv_bridge, and make setup found no '
                '../shared/cv_bridge-kit): nothing to compare the stand-in with', allow_module_level=True)
except ImportError as exc:  # installed but broken (e.g. its Debian libraries removed): say so, do not skip
    pytest.fail(f'cv_bridge is installed but does not import: {exc}', pytrace=False)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from runespoor_common import imgconv  # noqa: E402
from runespoor_common.imgconv import StandInCvBridge, StandInCvBridgeError  # noqa: E402

REAL = cv_bridge.CvBridge()
STAND_IN = StandInCvBridge()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: encoding -> (dtype, channels): what the nodes accept (camera, restored frames, labels) and 32FC1
SOURCES = {'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4), 'mono8': ('u1', 1),
           'mono16': ('u2', 1), '8UC1': ('u1', 1), '8UC3': ('u1', 3), '16UC1': ('u2', 1), '32FC1': ('f4', 1)}
DESIRED = ['passthrough', *SOURCES, 'rgb16', 'bgra16', '8UC4', '16UC3', '32FC3', '8SC1', '16SC1', '32SC1',
           '64FC1', 'yuv422', '', 'foo']


def outcome(fn):
    try:
        return 'ok', fn()
    except Exception as exc:  # noqa: BLE001 - compared below
        return 'err', exc


def assert_same(real, stand_in, what):
    if real[0] == 'ok' and stand_in[0] == 'ok':
        a, b = real[1], stand_in[1]
        if isinstance(a, np.ndarray):
            assert isinstance(b, np.ndarray), what
            assert (a.dtype.str, a.shape) == (b.dtype.str, b.shape), (what, a.dtype, a.shape, b.dtype, b.shape)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == 'f'), (what, a, b)
            assert b.flags.c_contiguous, what
        else:
            assert a == b, (what, a, b)
        return
    assert real[0] == stand_in[0], (what, real[1], stand_in[1])
    a, b = real[1], stand_in[1]
    if isinstance(a, cv_bridge.CvBridgeError):
        assert isinstance(b, StandInCvBridgeError), (what, a, b)
    else:
        assert type(a) is type(b), (what, a, b)
    if not str(a).startswith('OpenCV(') and not isinstance(a, KeyError):
        assert str(a) == str(b), (what, str(a), str(b))


def message(arr, encoding, pad, big):
    """An Image of `arr` with `pad` extra bytes per row, big- or little-endian."""
    arr = np.ascontiguousarray(arr)
    h = arr.shape[0]
    data = arr.astype(arr.dtype.newbyteorder('>' if big else '<')).reshape(h, -1).view(np.uint8)
    data = np.concatenate([data, np.full((h, pad), 0xA5, np.uint8)], axis=1)
    return Image(height=h, width=arr.shape[1], encoding=encoding, step=data.shape[1], is_bigendian=int(big),
                 data=data.tobytes())


def pixels(dtype, channels):
    shape = st.tuples(st.integers(1, 6), st.integers(1, 6))
    if channels > 1:
        shape = shape.map(lambda s: (*s, channels))
    if dtype == 'f4':
        elements = st.one_of(st.floats(width=32), st.sampled_from([0.5, 1.5, 2.5, -0.5, 255.5, 65535.5, 2.0 ** 31]))
        return arrays(np.float32, shape, elements=elements, fill=st.nothing())
    return arrays(np.dtype(dtype), shape, fill=st.nothing())  # every pixel drawn on its own


@st.composite
def images(draw):
    enc = draw(st.sampled_from(sorted(SOURCES)))
    arr = draw(pixels(*SOURCES[enc]))
    return enc, arr, draw(st.integers(0, 9)), draw(st.booleans())


@SETTINGS
@given(images())
def test_imgmsg_to_cv2_same_arrays_and_refusals(image):
    enc, arr, pad, big = image
    msg = message(arr, enc, pad, big)
    for desired in DESIRED:
        what = f'{enc} {arr.shape} pad {pad} big {big} -> {desired!r}'
        assert_same(outcome(lambda: REAL.imgmsg_to_cv2(msg, desired)),
                    outcome(lambda: STAND_IN.imgmsg_to_cv2(msg, desired)), what)


def test_every_16_bit_value_the_same():
    """16 -> 8 bit (round(x * 255 / 65535), not x >> 8) and 8 -> 16 bit on every value."""
    x = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    for enc in ('mono16', '16UC1'):
        msg = REAL.cv2_to_imgmsg(x, enc)
        for desired in ('mono8', 'rgb8', 'bgra8', '8UC1', '32FC1', 'rgb16'):
            assert_same(outcome(lambda: REAL.imgmsg_to_cv2(msg, desired)),
                        outcome(lambda: STAND_IN.imgmsg_to_cv2(msg, desired)), f'{enc} -> {desired}')
    assert np.array_equal(REAL.imgmsg_to_cv2(REAL.cv2_to_imgmsg(x, 'mono16'), 'mono8'),
                          np.round(x.astype(np.int64) * 255 / 65535).astype(np.uint8))
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for enc, desired in (('mono8', 'mono16'), ('8UC1', '16UC1'), ('rgb8', 'rgb16')):
        a = np.dstack([g, g, g]) if enc == 'rgb8' else g
        msg = REAL.cv2_to_imgmsg(a, enc)
        assert_same(outcome(lambda: REAL.imgmsg_to_cv2(msg, desired)),
                    outcome(lambda: STAND_IN.imgmsg_to_cv2(msg, desired)), f'{enc} -> {desired}')


@SETTINGS
@given(st.sampled_from([('u1', 1), ('u1', 3), ('u1', 4), ('u2', 1), ('>u2', 1), ('f4', 1), ('i1', 2), ('f8', 3)]),
       st.sampled_from(['passthrough', *SOURCES, 'rgb16', '8UC4', 'foo']), st.data())
def test_cv2_to_imgmsg_same_messages_and_refusals(kind, encoding, data):
    arr = data.draw(pixels(kind[0].lstrip('>'), kind[1]))
    arr = arr.astype(kind[0])
    if data.draw(st.booleans(), 'non-contiguous') and arr.shape[1] > 1:
        arr = arr[:, ::2]
    what = f'{arr.dtype} {arr.shape} as {encoding!r}'
    assert_same(outcome(lambda: REAL.cv2_to_imgmsg(arr, encoding)),
                outcome(lambda: STAND_IN.cv2_to_imgmsg(arr, encoding)), what)


@SETTINGS
@given(st.sampled_from([('u1', 1), ('u1', 3), ('u1', 4), ('u2', 1), ('u2', 3)]), st.sampled_from(['jpg', 'png']),
       st.data())
def test_compressed_same_both_ways(kind, fmt, data):
    arr = data.draw(pixels(*kind))
    real_msg = outcome(lambda: REAL.cv2_to_compressed_imgmsg(arr, fmt))
    assert_same(real_msg, outcome(lambda: STAND_IN.cv2_to_compressed_imgmsg(arr, fmt)), f'{arr.dtype} {fmt}')
    if real_msg[0] != 'ok':
        return
    msg = real_msg[1]
    for desired in ('passthrough', 'rgb8', 'bgr8', 'mono8', 'mono16', 'rgba8', 'bgra8', '8UC3', 'foo'):
        assert_same(outcome(lambda: REAL.compressed_imgmsg_to_cv2(msg, desired)),
                    outcome(lambda: STAND_IN.compressed_imgmsg_to_cv2(msg, desired)),
                    f'{arr.dtype} {arr.shape} {fmt} -> {desired!r}')


def test_encoding_tables_are_the_same():
    for enc in [*SOURCES, 'rgb16', 'bayer_rggb8', 'yuv422', '64FC4', '8SC2', '32S', 'uyvy', 'foo']:
        assert_same(outcome(lambda: REAL.encoding_to_cvtype2(enc)),
                    outcome(lambda: STAND_IN.encoding_to_cvtype2(enc)), enc)
        assert_same(outcome(lambda: REAL.encoding_to_dtype_with_channels(enc)),
                    outcome(lambda: STAND_IN.encoding_to_dtype_with_channels(enc)), enc)
    assert REAL.cvtype_to_name == STAND_IN.cvtype_to_name


@pytest.fixture(params=['cv_bridge', 'stand-in'])
def route(request, monkeypatch):
    """The project's helpers on the real cv_bridge, then on the stand-in."""
    monkeypatch.setattr(imgconv, '_BRIDGE', REAL if request.param == 'cv_bridge' else STAND_IN)
    return request.param


@SETTINGS
@given(images(), st.booleans())
def test_project_helpers_same_on_both_routes(image, generic):
    enc, arr, pad, big = image
    msg = message(arr, enc, pad, big)
    results = []
    for b in (REAL, STAND_IN):
        imgconv._BRIDGE = b
        try:
            results.append(outcome(lambda: imgconv.image_to_rgb(msg, generic_as_color=generic)))
        finally:
            imgconv._BRIDGE = None
    (ka, a), (kb, b) = results
    assert ka == kb, (enc, a, b)
    if ka == 'ok':
        assert a.dtype == np.uint8 and a.shape == arr.shape[:2] + (3,)
        assert np.array_equal(a, b)
        # rows padded by any byte count read right: the same as the unpadded message
        assert np.array_equal(a, imgconv.image_to_rgb(message(arr, enc, 0, big), generic_as_color=generic))
    else:
        assert type(a) is type(b) and str(a) == str(b)


def test_hot_path_is_a_view_on_both_routes(route):
    rgb = np.random.default_rng(0).integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    msg = imgconv.rgb_to_image(rgb)
    out = imgconv.image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8)) and np.array_equal(out, rgb)

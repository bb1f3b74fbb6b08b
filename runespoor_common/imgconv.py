"""Image conversion, the one module: sensor_msgs/Image and CompressedImage <-> NumPy, through cv_bridge's API.

Two routes, one API (ROS 2 cv_bridge's `CvBridge`, `CvBridgeError`, `imgmsg_to_cv2`, `cv2_to_imgmsg`,
`compressed_imgmsg_to_cv2`, `cv2_to_compressed_imgmsg`, `desired_encoding` semantics):

* **the real cv_bridge** wherever `import cv_bridge` works: a ROS 2 installation (rosdep installs
  `cv_bridge`, declared in package.xml) or the pip route with ../shared/cv_bridge-kit, which `make setup`
  builds into the venv;
* otherwise **the stand-in** `StandInCvBridge` below: cv_bridge 3.4's Python code (core.py) and the part of its
  C++ `cvtColor` it calls (cv_bridge.cpp: conversion codes, 8 <-> 16 bit scaling, saturation), written again on
  NumPy + OpenCV. It gives the same arrays, messages and refusals as the real one
  (test/test_cv_bridge_parity.py checks that with hypothesis wherever both are present), upstream quirks
  included: 16 -> 8 bit is round(x * 255 / 65535), generic encodings (8UC3, 16UC1, ...) are "not a colour
  format", `cv2_to_imgmsg` without an encoding writes 8UC3 for an HxWx3 uint8 array, and rows padded by a
  byte count that is not a multiple of the pixel size come out shifted (core.py reshapes by step // pixel).

`CvBridge` / `CvBridgeError` are the route in use (`BACKEND`: 'cv_bridge' or 'stand-in'). The environment
variable RUNESPOOR_CV_BRIDGE=standin forces the stand-in, =cv_bridge requires the real one (ImportError
without it); unset or `auto` takes the real one when it imports.

The project's helpers (what the nodes call) are cv_bridge calls plus three things, the same on both routes:
* malformed messages (unknown encoding, empty size, step shorter than a row, data shorter than
  height x step) raise `ImageEncodingError` (a `CvBridgeError` and a `ValueError`) that says what is wrong;
  rows padded by any number of bytes are read correctly (the odd-padding quirk above is repaired);
* the hot path makes no copy: an rgb8 frame comes back as the passthrough view of `msg.data`
  (`imgmsg_to_cv2(msg)`), not as `imgmsg_to_cv2(msg, 'rgb8')`, which copies (same pixels);
* one named option, `generic_as_color` (`GENERIC_AS_COLOR`): read the generic encodings a camera may publish
  (8UC3, 8UC4, 8UC1, 16UC1; `CvBridge().cv2_to_imgmsg(bgr_image)` writes 8UC3) as the OpenCV colour encoding
  they carry by convention (bgr8, bgra8, mono8, mono16), where cv_bridge refuses the conversion. The edge
  streamer turns it on (its `generic_as_color` parameter); everything else is strict cv_bridge.

This module imports message types, NumPy and OpenCV (and cv_bridge when present), never rclpy.
"""
from __future__ import annotations

import os
import re
import sys

import numpy as np
from sensor_msgs.msg import CompressedImage, Image


# ============================================================================================== stand-in
class StandInCvBridgeError(TypeError):
    """What `StandInCvBridge` raises where cv_bridge raises `CvBridgeError` (a TypeError, like upstream's)."""


# sensor_msgs/image_encodings.hpp (Kilted) and cv_bridge.cpp, as data
_DEPTHS = {'8U': 0, '8S': 1, '16U': 2, '16S': 3, '32S': 4, '32F': 5, '64F': 6}
_DEPTH_DTYPE = {0: 'uint8', 1: 'int8', 2: 'uint16', 3: 'int16', 4: 'int32', 5: 'float32', 6: 'float64'}
_CN_SHIFT = 3  # cv_bridge numbers types like the C++ OpenCV 4 it links (CV_8UC3 == 16), not cv2 5.x's numbering


def _cv_make_type(depth: int, cn: int) -> int:
    return (depth & 7) + ((cn - 1) << _CN_SHIFT)


_NAMED_CVTYPE = {
    'bgr8': (0, 3), 'mono8': (0, 1), 'rgb8': (0, 3), 'mono16': (2, 1), 'bgr16': (2, 3), 'rgb16': (2, 3),
    'bgra8': (0, 4), 'rgba8': (0, 4), 'bgra16': (2, 4), 'rgba16': (2, 4),
    'bayer_rggb8': (0, 1), 'bayer_bggr8': (0, 1), 'bayer_gbrg8': (0, 1), 'bayer_grbg8': (0, 1),
    'bayer_rggb16': (2, 1), 'bayer_bggr16': (2, 1), 'bayer_gbrg16': (2, 1), 'bayer_grbg16': (2, 1),
    'yuv422': (0, 2), 'yuv422_yuy2': (0, 2),
}
_GENERIC_RE = re.compile(r'(8U|8S|16U|16S|32S|32F|64F)C([0-9]+)')
_GENERIC1_RE = re.compile(r'(8U|8S|16U|16S|32S|32F|64F)')
_CVTYPE_RE = re.compile(r'(8|16|32|64)(U|S|F)C([0-9]*)')
_BAYER = ('bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8',
          'bayer_rggb16', 'bayer_bggr16', 'bayer_gbrg16', 'bayer_grbg16')
_YUV2 = ('yuv422', 'yuv422_yuy2', 'uyvy', 'yuyv', 'nv12', 'nv21', 'nv24')
_COLOR = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'rgb16', 'bgr16', 'rgba16', 'bgra16') + _YUV2


class _Failure(Exception):
    """A C++ exception of cv_bridge (std::runtime_error / cv::Exception); CvBridge turns it into CvBridgeError."""


def get_cv_type(encoding: str) -> int:
    """cv_bridge::getCvType: the OpenCV type (C++ OpenCV 4 numbering) of an encoding."""
    if encoding in _NAMED_CVTYPE:
        return _cv_make_type(*_NAMED_CVTYPE[encoding])
    m = _GENERIC_RE.fullmatch(encoding)
    if m:
        return _cv_make_type(_DEPTHS[m[1]], int(m[2]))
    m = _GENERIC1_RE.fullmatch(encoding)
    if m:
        return _cv_make_type(_DEPTHS[m[1]], 1)
    raise _Failure(f'Unrecognized image encoding [{encoding}]')


def _num_channels(e: str) -> int:
    if e in ('mono8', 'mono16'):
        return 1
    if e in ('bgr8', 'rgb8', 'bgr16', 'rgb16'):
        return 3
    if e in ('bgra8', 'rgba8', 'bgra16', 'rgba16'):
        return 4
    if e in _BAYER:
        return 1
    m = _CVTYPE_RE.fullmatch(e)
    if m:
        return int(m[3]) if m[3] else 1
    if e in _YUV2:
        return 2
    raise _Failure(f'Unknown encoding {e}')


def _bit_depth(e: str) -> int:
    if e in ('mono8', 'bgr8', 'rgb8', 'bgra8', 'rgba8') + _BAYER[:4]:
        return 8
    if e in ('mono16', 'bgr16', 'rgb16', 'bgra16', 'rgba16') + _BAYER[4:]:
        return 16
    m = _CVTYPE_RE.fullmatch(e)
    if m:
        return int(m[1])
    if e in _YUV2:
        return 8
    raise _Failure(f'Unknown encoding {e}')


_GRAY, _RGB, _BGR, _RGBA, _BGRA, _YUV422, _YUY2 = range(7)
_BAYER_KIND = {'rggb': 7, 'bggr': 8, 'gbrg': 9, 'grbg': 10}


def _get_encoding(e: str) -> int:
    kinds = {'mono8': _GRAY, 'mono16': _GRAY, 'bgr8': _BGR, 'bgr16': _BGR, 'rgb8': _RGB, 'rgb16': _RGB,
             'bgra8': _BGRA, 'bgra16': _BGRA, 'rgba8': _RGBA, 'rgba16': _RGBA, 'yuv422': _YUV422,
             'yuv422_yuy2': _YUY2}
    if e in kinds:
        return kinds[e]
    if e in _BAYER:
        return _BAYER_KIND[e[6:10]]
    return -1


_SAME = None  # SAME_FORMAT: convertTo to the destination depth


def _conversion_table() -> dict:
    import cv2
    names = {
        (_GRAY, _RGB): 'GRAY2RGB', (_GRAY, _BGR): 'GRAY2BGR', (_GRAY, _RGBA): 'GRAY2RGBA', (_GRAY, _BGRA): 'GRAY2BGRA',
        (_RGB, _GRAY): 'RGB2GRAY', (_RGB, _BGR): 'RGB2BGR', (_RGB, _RGBA): 'RGB2RGBA', (_RGB, _BGRA): 'RGB2BGRA',
        (_BGR, _GRAY): 'BGR2GRAY', (_BGR, _RGB): 'BGR2RGB', (_BGR, _RGBA): 'BGR2RGBA', (_BGR, _BGRA): 'BGR2BGRA',
        (_RGBA, _GRAY): 'RGBA2GRAY', (_RGBA, _RGB): 'RGBA2RGB', (_RGBA, _BGR): 'RGBA2BGR', (_RGBA, _BGRA): 'RGBA2BGRA',
        (_BGRA, _GRAY): 'BGRA2GRAY', (_BGRA, _RGB): 'BGRA2RGB', (_BGRA, _BGR): 'BGRA2BGR', (_BGRA, _RGBA): 'BGRA2RGBA',
    }
    for src, tag in ((_YUV422, 'UYVY'), (_YUY2, 'YUY2')):
        for dst, d in ((_GRAY, 'GRAY'), (_RGB, 'RGB'), (_BGR, 'BGR'), (_RGBA, 'RGBA'), (_BGRA, 'BGRA')):
            names[(src, dst)] = f'YUV2{d}_{tag}'
    for kind, cv in (('rggb', 'BG'), ('bggr', 'RG'), ('gbrg', 'GR'), ('grbg', 'GB')):
        for dst, d in ((_GRAY, 'GRAY'), (_RGB, 'RGB'), (_BGR, 'BGR')):
            names[(_BAYER_KIND[kind], dst)] = f'Bayer{cv}2{d}'
    table = {(i, i): [_SAME] for i in range(6)}
    for key, name in names.items():
        code = getattr(cv2, f'COLOR_{name}', None)
        if code is not None:
            table[key] = [code]
    return table


_TABLE: dict | None = None
_GRAY_EXPANDERS: tuple = ()


def _gray_expanders() -> tuple:
    global _GRAY_EXPANDERS
    if not _GRAY_EXPANDERS:
        import cv2
        _GRAY_EXPANDERS = tuple(getattr(cv2, f'COLOR_GRAY2{d}') for d in ('RGB', 'BGR', 'RGBA', 'BGRA'))
    return _GRAY_EXPANDERS


def _conversion_codes(src: str, dst: str) -> list:
    """cv_bridge.cpp getConversionCode."""
    global _TABLE
    src_color = src in _COLOR or src in ('mono8', 'mono16') or src in _BAYER
    dst_color = dst in _COLOR or dst in ('mono8', 'mono16') or dst in _BAYER
    same_channels = _num_channels(src) == _num_channels(dst)
    if not src_color:
        if dst_color:
            raise _Failure(f'[{src}] is not a color format. but [{dst}] is. The conversion does not make sense')
        if not same_channels:
            raise _Failure(f'[{src}] and [{dst}] do not have the same number of channel')
        return [_SAME]
    if not dst_color:
        if not same_channels:
            raise _Failure(f'[{src}] is a color format but [{dst}] is not so they must have the same OpenCV '
                           'type, CV_8UC3, CV16UC1 ....')
        return [_SAME]
    if _TABLE is None:
        _TABLE = _conversion_table()
    codes = _TABLE.get((_get_encoding(src), _get_encoding(dst)))
    if codes is None:
        raise _Failure(f'Unsupported conversion from [{src}] to [{dst}]')
    codes = list(codes)
    if _bit_depth(src) != _bit_depth(dst) and _get_encoding(src) != _get_encoding(dst):
        codes.append(_SAME)
    return codes


_INT_MIN = -2 ** 31


_LUTS: dict = {}


def _convert_to(src: np.ndarray, dtype: np.dtype, alpha: float) -> np.ndarray:
    """cv::Mat::convertTo(dst, depth, alpha): saturate_cast<T>(src * alpha), rounding half to even; a float that
    does not fit an int32 (NaN, inf, |x| >= 2**31) rounds to INT_MIN first (x86 cvRound), then saturates.
    8- and 16-bit integer sources go through a table of every value (the same arithmetic, done once)."""
    if alpha == 1.0 and src.dtype == dtype:
        return src.copy()
    if src.dtype.kind in 'ui' and src.dtype.itemsize <= 2 and src.size > (4096 if src.dtype.itemsize == 2 else 0):
        key = (src.dtype.str, dtype.str, alpha)
        info = np.iinfo(src.dtype)
        if key not in _LUTS:
            _LUTS[key] = _convert_values(np.arange(info.min, info.max + 1).astype(src.dtype), dtype, alpha)
        return _LUTS[key][src.astype(np.int64) - info.min if src.dtype.kind == 'i' else src]
    return _convert_values(src, dtype, alpha)


def _convert_values(src: np.ndarray, dtype: np.dtype, alpha: float) -> np.ndarray:
    if dtype.kind == 'f':
        with np.errstate(invalid='ignore', over='ignore'):  # float64 -> float32 overflows to inf, like OpenCV
            if alpha == 1.0:
                return src.astype(dtype)
            work = np.float64 if np.float64 in (src.dtype, dtype) or src.dtype == np.int32 else np.float32
            return (src.astype(work) * work(alpha)).astype(dtype)
    info = np.iinfo(dtype)
    if alpha == 1.0 and src.dtype.kind in 'ui':
        return np.clip(src.astype(np.int64), info.min, info.max).astype(dtype)
    work = np.float64 if src.dtype in (np.float64, np.int32) else np.float32
    v = src.astype(work)
    if alpha != 1.0:
        v = v * work(alpha)
    with np.errstate(invalid='ignore', over='ignore'):
        r = np.rint(v).astype(np.float64)
        r[~((r >= _INT_MIN) & (r < 2 ** 31))] = _INT_MIN  # also NaN
    return np.clip(r, info.min, info.max).astype(dtype)


def cvt_color2(im: np.ndarray, enc_in: str, enc_out: str) -> np.ndarray:
    """cv_bridge_boost.cvtColor2 (cv_bridge.cpp toCvCopyImpl) on NumPy + OpenCV; raises _Failure."""
    import cv2
    if enc_out == '' or enc_out == enc_in:
        return np.array(im, copy=True, order='C')
    codes = _conversion_codes(enc_in, enc_out)
    if len(codes) == 2 and codes[1] is _SAME and codes[0] in _gray_expanders():
        codes = codes[::-1]  # gray -> colour copies the value (alpha: the maximum): scale first, 1/3 the work
    img = im
    for code in codes:
        if code is _SAME:
            src_bits, dst_bits = _bit_depth(enc_in), _bit_depth(enc_out)
            dtype = np.dtype(_DEPTH_DTYPE[get_cv_type(enc_out) & 7])
            alpha = 65535.0 / 255.0 if (src_bits, dst_bits) == (8, 16) else \
                255.0 / 65535.0 if (src_bits, dst_bits) == (16, 8) else 1.0
            img = _convert_to(img, dtype, alpha)
        else:
            try:
                img = cv2.cvtColor(img, code)
            except cv2.error as exc:
                raise _Failure(str(exc)) from None
    return np.ascontiguousarray(img)


class StandInCvBridge:
    """ROS 2 cv_bridge's `CvBridge` (3.4, core.py + the C++ cvtColor it calls) on NumPy + OpenCV.

    Same methods, arguments, results and exceptions as the real class; used when cv_bridge is not installed.
    """

    def __init__(self):
        self.cvtype_to_name = {}
        self.cvdepth_to_numpy_depth = dict(_DEPTH_DTYPE)
        for t in ['8U', '8S', '16U', '16S', '32S', '32F', '64F']:
            for c in [1, 2, 3, 4]:
                self.cvtype_to_name[_cv_make_type(_DEPTHS[t], c)] = f'{t}C{c}'
        self.numpy_type_to_cvtype = {'uint8': '8U', 'int8': '8S', 'uint16': '16U', 'int16': '16S',
                                     'int32': '32S', 'float32': '32F', 'float64': '64F'}
        self.numpy_type_to_cvtype.update({v: k for k, v in self.numpy_type_to_cvtype.items()})

    def dtype_with_channels_to_cvtype2(self, dtype, n_channels):
        return '%sC%d' % (self.numpy_type_to_cvtype[dtype.name], n_channels)

    def cvtype2_to_dtype_with_channels(self, cvtype):
        return self.cvdepth_to_numpy_depth[cvtype & 7], ((cvtype >> _CN_SHIFT) & 511) + 1

    def encoding_to_cvtype2(self, encoding):
        try:
            return get_cv_type(encoding)
        except _Failure as exc:
            raise StandInCvBridgeError(exc) from None

    def encoding_to_dtype_with_channels(self, encoding):
        return self.cvtype2_to_dtype_with_channels(self.encoding_to_cvtype2(encoding))

    def compressed_imgmsg_to_cv2(self, cmprs_img_msg, desired_encoding='passthrough'):
        """CompressedImage -> array: cv2.imdecode(IMREAD_UNCHANGED); a desired encoding converts from bgr8."""
        import cv2
        buf = np.ndarray(shape=(1, len(cmprs_img_msg.data)), dtype=np.uint8, buffer=cmprs_img_msg.data)
        im = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if desired_encoding == 'passthrough':
            return im
        try:
            return cvt_color2(im, 'bgr8', desired_encoding)
        except _Failure as exc:
            raise StandInCvBridgeError(exc) from None

    def imgmsg_to_cv2(self, img_msg, desired_encoding='passthrough'):
        """Image -> array in the message's encoding (passthrough) or converted to `desired_encoding`."""
        dtype, n_channels = self.encoding_to_dtype_with_channels(img_msg.encoding)
        dtype = np.dtype(dtype).newbyteorder('>' if img_msg.is_bigendian else '<')
        img_buf = np.asarray(img_msg.data, dtype=dtype) if isinstance(img_msg.data, list) else img_msg.data
        if n_channels == 1:
            im = np.ndarray(shape=(img_msg.height, int(img_msg.step / dtype.itemsize)), dtype=dtype, buffer=img_buf)
            im = np.ascontiguousarray(im[:img_msg.height, :img_msg.width])
        else:
            im = np.ndarray(shape=(img_msg.height, int(img_msg.step / dtype.itemsize / n_channels), n_channels),
                            dtype=dtype, buffer=img_buf)
            im = np.ascontiguousarray(im[:img_msg.height, :img_msg.width, :])
        if img_msg.is_bigendian == (sys.byteorder == 'little'):
            im = im.byteswap().view(im.dtype.newbyteorder())
        if desired_encoding == 'passthrough':
            return im
        try:
            return cvt_color2(im, img_msg.encoding, desired_encoding)
        except _Failure as exc:
            raise StandInCvBridgeError(exc) from None

    def cv2_to_compressed_imgmsg(self, cvim, dst_format='jpg'):
        """Array -> CompressedImage: cv2.imencode('.' + dst_format); `format` is dst_format as given."""
        import cv2
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise TypeError('Your input type is not a numpy array')
        msg = CompressedImage()
        msg.format = dst_format
        msg.data.frombytes(np.array(cv2.imencode('.' + dst_format, cvim)[1]).tobytes())
        return msg

    def cv2_to_imgmsg(self, cvim, encoding='passthrough', header=None):
        """Array -> Image; `encoding` must match the array's type exactly (passthrough: 8UC3, 16UC1, ...)."""
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise TypeError('Your input type is not a numpy array')
        msg = Image()
        msg.height = cvim.shape[0]
        msg.width = cvim.shape[1]
        if header is not None:
            msg.header = header
        cv_type = self.dtype_with_channels_to_cvtype2(cvim.dtype, 1 if len(cvim.shape) < 3 else cvim.shape[2])
        if encoding == 'passthrough':
            msg.encoding = cv_type
        else:
            msg.encoding = encoding
            if self.cvtype_to_name[self.encoding_to_cvtype2(encoding)] != cv_type:
                raise StandInCvBridgeError(f'encoding specified as {encoding}, but image has incompatible type '
                                           f'{cv_type}')
        if cvim.dtype.byteorder == '>':
            msg.is_bigendian = True
        # one copy (cv_bridge: tobytes() + frombytes(), two); the same bytes
        msg.data.frombytes(np.ascontiguousarray(cvim).reshape(-1).view(np.uint8))
        msg.step = len(msg.data) // msg.height
        return msg


# ============================================================================================== the route
def _load_backend():
    choice = os.environ.get('RUNESPOOR_CV_BRIDGE', 'auto').strip().lower() or 'auto'
    if choice in ('standin', 'stand-in'):
        return StandInCvBridge, StandInCvBridgeError, 'stand-in', 'forced by RUNESPOOR_CV_BRIDGE=standin'
    try:
        from cv_bridge import CvBridge as real, CvBridgeError as real_error
    except ImportError as exc:
        if choice == 'cv_bridge':
            raise ImportError(f'RUNESPOOR_CV_BRIDGE=cv_bridge but cv_bridge does not import: {exc}') from exc
        return StandInCvBridge, StandInCvBridgeError, 'stand-in', f'cv_bridge not importable ({exc})'
    import cv_bridge
    return real, real_error, 'cv_bridge', f'cv_bridge from {cv_bridge.__path__[0]}'


CvBridge, CvBridgeError, BACKEND, BACKEND_NOTE = _load_backend()


class ImageEncodingError(CvBridgeError, ValueError):
    """An image the project cannot convert; the message says what is wrong with it (a CvBridgeError of the
    route in use, and a ValueError)."""


_BRIDGE = None


def bridge():
    """The process's `CvBridge` instance (real or stand-in)."""
    global _BRIDGE
    if _BRIDGE is None:
        _BRIDGE = CvBridge()
    return _BRIDGE


#: The named option: generic encodings read as the colour encoding they carry by OpenCV convention.
GENERIC_AS_COLOR = {'8UC3': 'bgr8', '8UC4': 'bgra8', '8UC1': 'mono8', '16UC1': 'mono16'}
#: Encodings `image_to_rgb` converts (cv_bridge converts each of them to rgb8).
RGB_SOURCES = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16')
#: Label maps (class ids): 8-bit, one channel.
LABEL_ENCODINGS = ('mono8', '8UC1')


class _MsgView:
    """The fields `imgmsg_to_cv2` reads, with another encoding or repacked rows; shares the data otherwise."""
    __slots__ = ('header', 'height', 'width', 'encoding', 'is_bigendian', 'step', 'data')

    def __init__(self, msg, **changes):
        for k in self.__slots__:
            setattr(self, k, changes[k] if k in changes else getattr(msg, k))


def _checked(msg, encoding=None):
    """`msg` (or a view of it with `encoding`) once it is well formed; ImageEncodingError says why not.

    Rows padded by a byte count that is not a multiple of the pixel size are repacked (one copy) so that
    cv_bridge's `imgmsg_to_cv2` reads them right."""
    enc = encoding or msg.encoding
    try:
        depth_cn = get_cv_type(enc)
    except _Failure:
        raise ImageEncodingError(f'unsupported image encoding {msg.encoding!r}') from None
    itemsize = np.dtype(_DEPTH_DTYPE[depth_cn & 7]).itemsize
    pixel = itemsize * (((depth_cn >> _CN_SHIFT) & 511) + 1)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageEncodingError(f'{msg.encoding} image has an empty size {w}x{h}')
    row = w * pixel
    if step < row:
        raise ImageEncodingError(f'{msg.encoding} image {w}x{h}: step {step} is smaller than a row ({row} bytes)')
    n = len(msg.data)
    if n < step * h:
        raise ImageEncodingError(f'{msg.encoding} image {w}x{h}, step {step}: data has {n} bytes, '
                                 f'expected {step * h}')
    if step % pixel:
        rows = np.frombuffer(msg.data, np.uint8, count=step * h).reshape(h, step)[:, :row]
        return _MsgView(msg, encoding=enc, step=row, data=np.ascontiguousarray(rows).reshape(-1))
    return msg if enc == msg.encoding else _MsgView(msg, encoding=enc)


def _convert(msg, desired: str, what: str) -> np.ndarray:
    try:
        return bridge().imgmsg_to_cv2(msg, desired)
    except (CvBridgeError, StandInCvBridgeError) as exc:
        raise ImageEncodingError(f'{what} {msg.width}x{msg.height}: {exc}') from None


# ============================================================================================== helpers
def image_to_array(msg) -> np.ndarray:
    """The pixels as (H, W) or (H, W, C) in the message's own encoding: `imgmsg_to_cv2(msg)` (passthrough).

    A view of `msg.data` when the rows are not padded and the byte order is native."""
    return _convert(_checked(msg), 'passthrough', f'{msg.encoding} image')


def image_to_rgb(msg, *, generic_as_color: bool = False) -> np.ndarray:
    """RGB uint8 (H, W, 3): `imgmsg_to_cv2(msg, 'rgb8')` for rgb8, bgr8, rgba8, bgra8, mono8, mono16
    (16 bit: round(x * 255 / 65535)); an rgb8 frame is returned as the passthrough view (no copy).

    `generic_as_color` also reads 8UC3, 8UC4, 8UC1 and 16UC1 as bgr8, bgra8, mono8 and mono16
    (GENERIC_AS_COLOR), which cv_bridge refuses ("not a color format")."""
    enc = msg.encoding
    if generic_as_color and enc in GENERIC_AS_COLOR:
        enc = GENERIC_AS_COLOR[enc]
    elif enc not in RGB_SOURCES:
        if enc in GENERIC_AS_COLOR:
            raise ImageEncodingError(
                f'image encoding {enc!r} carries no colour order (cv_bridge will not convert it to rgb8); '
                f'publish {GENERIC_AS_COLOR[enc]} or turn on generic_as_color to read it as '
                f'{GENERIC_AS_COLOR[enc]}')
        raise ImageEncodingError(f'unsupported image encoding {enc!r} for an RGB image; supported: '
                                 f'{", ".join(RGB_SOURCES)}' + (', and with generic_as_color '
                                                                f'{", ".join(GENERIC_AS_COLOR)}'))
    view = _checked(msg, enc)
    if enc == 'rgb8':  # the hot path: the same pixels as imgmsg_to_cv2(msg, 'rgb8'), without its copy
        return _convert(view, 'passthrough', f'{msg.encoding} image')
    return _convert(view, 'rgb8', f'{msg.encoding} image')


def image_to_labels(msg) -> np.ndarray:
    """Label map uint8 (H, W) from a mono8 / 8UC1 Image (class ids, 255 = ignore by convention)."""
    if msg.encoding not in LABEL_ENCODINGS:
        raise ImageEncodingError(f'a label image must be mono8 or 8UC1, got {msg.encoding!r}')
    return _convert(_checked(msg), 'passthrough', f'{msg.encoding} label image')


def _to_msg(arr: np.ndarray, encoding: str, header):
    try:
        return bridge().cv2_to_imgmsg(arr, encoding, header)
    except (CvBridgeError, StandInCvBridgeError) as exc:
        raise ImageEncodingError(f'cannot write {arr.dtype} {arr.shape} as {encoding}: {exc}') from None


def rgb_to_image(arr: np.ndarray, encoding: str = 'rgb8', header=None):
    """sensor_msgs/Image from an RGB uint8 (H, W, 3) array, written as rgb8 or bgr8 (or mono8 for (H, W)):
    `cv2_to_imgmsg(arr, 'rgb8')`, `cv2_to_imgmsg(arr[..., ::-1], 'bgr8')`."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ImageEncodingError(f'expected a uint8 image, got dtype {arr.dtype}')
    if encoding == 'mono8':
        if arr.ndim != 2 or arr.size == 0:
            raise ImageEncodingError(f'mono8 needs a non-empty (H, W) array, got shape {arr.shape}')
        return _to_msg(arr, 'mono8', header)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageEncodingError(f'expected an RGB image of shape (H, W, 3), got {arr.shape}')
    if encoding == 'rgb8':
        return _to_msg(arr, 'rgb8', header)
    if encoding == 'bgr8':
        return _to_msg(arr[:, :, ::-1], 'bgr8', header)
    raise ImageEncodingError(f'cannot write encoding {encoding!r}; use rgb8, bgr8 or mono8')


def labels_to_image(labels: np.ndarray, header=None):
    """mono8 sensor_msgs/Image from a uint8 (H, W) label map: `cv2_to_imgmsg(labels, 'mono8')`."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2 or labels.size == 0:
        raise ImageEncodingError(f'a label map must be uint8 (H, W), got {labels.dtype} {labels.shape}')
    return _to_msg(labels, 'mono8', header)

"""sensor_msgs/Image <-> NumPy without cv_bridge (ROS 2 cv_bridge is not installable from PyPI).

Conversions follow cv_bridge's conventions (16-bit to 8-bit divides by 256, like cv_bridge's
`cvtColorForDisplay` default) and handle row padding (`step > width * bytes per pixel`) and big-endian
16-bit data. Copies are avoided where possible: `np.frombuffer` to read, `arr.tobytes()` to write
(assigning an ndarray to `msg.data` costs ~600 ms for 6 MB in rclpy).

Hand-written because cv_bridge is unavailable; this module imports message types but never rclpy.
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

#: encoding -> (channels, numpy dtype)
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    'rgb8': (3, np.dtype(np.uint8)),
    'bgr8': (3, np.dtype(np.uint8)),
    'rgba8': (4, np.dtype(np.uint8)),
    'bgra8': (4, np.dtype(np.uint8)),
    'mono8': (1, np.dtype(np.uint8)),
    '8UC1': (1, np.dtype(np.uint8)),
    '8UC3': (3, np.dtype(np.uint8)),   # OpenCV convention: treated as bgr8
    'mono16': (1, np.dtype(np.uint16)),
    '16UC1': (1, np.dtype(np.uint16)),
}
SUPPORTED = tuple(ENCODINGS)


class ImageEncodingError(ValueError):
    """An Image message that cannot be converted (unknown encoding, inconsistent step/size/data)."""


def image_to_array(msg) -> np.ndarray:
    """The pixels of `msg` as (H, W) or (H, W, C) in the message's own encoding and channel order.

    The result is a read-only view of `msg.data` when the rows are not padded.
    """
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise ImageEncodingError(f'unsupported image encoding {enc!r}; supported: {", ".join(SUPPORTED)}')
    channels, dtype = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageEncodingError(f'{enc} image has an empty size {w}x{h}')
    row = w * channels * dtype.itemsize
    if step < row:
        raise ImageEncodingError(f'{enc} image {w}x{h}: step {step} is smaller than a row ({row} bytes)')
    data = msg.data
    buf = np.frombuffer(data if isinstance(data, (bytes, bytearray, memoryview)) else memoryview(data),
                        dtype=np.uint8)
    if buf.size < step * h:
        raise ImageEncodingError(f'{enc} image {w}x{h}, step {step}: data has {buf.size} bytes, '
                                 f'expected {step * h}')
    rows = buf[:step * h].reshape(h, step)[:, :row]
    big = bool(msg.is_bigendian)
    if dtype.itemsize > 1:
        rows = np.ascontiguousarray(rows)
        arr = rows.view(dtype.newbyteorder('>' if big else '<')).reshape(h, w)
        arr = arr.astype(dtype, copy=False)
    else:
        arr = rows.reshape(h, w, channels) if channels > 1 else rows.reshape(h, w)
    return arr


def image_to_rgb(msg) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an Image in any supported encoding (16-bit mono is divided by 256)."""
    arr = image_to_array(msg)
    enc = msg.encoding
    if enc == 'rgb8':
        out = arr
    elif enc in ('bgr8', '8UC3'):
        out = arr[:, :, ::-1]
    elif enc == 'rgba8':
        out = arr[:, :, :3]
    elif enc == 'bgra8':
        out = arr[:, :, 2::-1]
    else:  # mono
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
        out = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def image_to_labels(msg) -> np.ndarray:
    """Label map uint8 (H, W) from a mono8 / 8UC1 Image (class ids, 255 = ignore by convention)."""
    if msg.encoding not in ('mono8', '8UC1'):
        raise ImageEncodingError(f'a label image must be mono8 or 8UC1, got {msg.encoding!r}')
    return np.ascontiguousarray(image_to_array(msg))


def _make(arr: np.ndarray, encoding: str, header=None):
    arr = np.ascontiguousarray(arr)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.strides[0])
    msg.data = arr.tobytes()
    return msg


def rgb_to_image(arr: np.ndarray, encoding: str = 'rgb8', header=None):
    """sensor_msgs/Image from an RGB uint8 (H, W, 3) array, written as rgb8 or bgr8 (or mono8 for (H, W))."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ImageEncodingError(f'expected a uint8 image, got dtype {arr.dtype}')
    if encoding == 'mono8':
        if arr.ndim != 2:
            raise ImageEncodingError(f'mono8 needs an (H, W) array, got shape {arr.shape}')
        return _make(arr, 'mono8', header)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageEncodingError(f'expected an RGB image of shape (H, W, 3), got {arr.shape}')
    if encoding == 'rgb8':
        return _make(arr, 'rgb8', header)
    if encoding == 'bgr8':
        return _make(arr[:, :, ::-1], 'bgr8', header)
    raise ImageEncodingError(f'cannot write encoding {encoding!r}; use rgb8, bgr8 or mono8')


def labels_to_image(labels: np.ndarray, header=None):
    """mono8 sensor_msgs/Image from a uint8 (H, W) label map."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2 or labels.size == 0:
        raise ImageEncodingError(f'a label map must be uint8 (H, W), got {labels.dtype} {labels.shape}')
    return _make(labels, 'mono8', header)

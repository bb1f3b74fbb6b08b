"""The edge's frame encoding, exactly: area downsample to floor(size / scale), then JPEG (OpenCV).

Training, evaluation and profiling import these functions, so what they feed the models is byte-for-byte
what the cloud receives from a robot with the same knobs. Images are RGB uint8 (H, W, 3) or mono (H, W).
"""
from __future__ import annotations

import cv2
import numpy as np

VALID_SCALES = (1, 2, 4, 6, 8)
QUALITY_RANGE = (40, 95)


class CodecError(ValueError):
    """A frame that cannot be encoded or decoded (the message says why)."""


def scaled_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """Size of a `width`x`height` frame sent at `scale` (floor; 2048x1024 at x6 -> 341x170)."""
    if scale not in VALID_SCALES:
        raise CodecError(f'scale {scale!r} is not one of {VALID_SCALES}')
    w, h = width // scale, height // scale
    if w < 1 or h < 1:
        raise CodecError(f'{width}x{height} is too small for scale {scale}')
    return w, h


def downsample(image: np.ndarray, scale: int) -> np.ndarray:
    """Area-interpolated downsample to floor(size / scale); scale 1 returns the image itself."""
    h, w = image.shape[:2]
    tw, th = scaled_size(w, h, scale)
    if scale == 1:
        return image
    return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG-encode an RGB (or mono) uint8 image at `quality` (40..95)."""
    if not QUALITY_RANGE[0] <= int(quality) <= QUALITY_RANGE[1]:
        raise CodecError(f'JPEG quality {quality!r} outside {QUALITY_RANGE}')
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise CodecError(f'cannot encode array of dtype {image.dtype} and shape {image.shape}')
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CodecError('OpenCV failed to encode the frame')
    return buf.tobytes()


#: Largest frame side decode_jpeg accepts by default: a corrupt header claiming 20000x20000 would
#: otherwise make OpenCV allocate ~1.2 GB and spend seconds decoding a 600-byte payload.
MAX_DECODE_SIDE = 8192
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame (not DHT/JPG/DAC)
#: cv2.IMREAD_COLOR_RGB (OpenCV >= 4.10) decodes straight to RGB; None on older OpenCV.
_IMREAD_RGB = getattr(cv2, 'IMREAD_COLOR_RGB', None)


def jpeg_size(buf: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from the JPEG's start-of-frame header, or None when no SOF segment is found.

    Hand-written (a walk over the marker segments): OpenCV has no header-only read.
    """
    i, n = 2, buf.size
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = int(buf[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # segments without a length
            i += 2
            continue
        length = (int(buf[i + 2]) << 8) | int(buf[i + 3])
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                return None
            h = (int(buf[i + 5]) << 8) | int(buf[i + 6])
            w = (int(buf[i + 7]) << 8) | int(buf[i + 8])
            return w, h
        if marker == 0xDA or length < 2:  # scan data before any SOF, or a broken length
            return None
        i += 2 + length
    return None


def decode_jpeg(data: bytes | bytearray | memoryview | np.ndarray,
                expected_size: tuple[int, int] | None = None, max_side: int = MAX_DECODE_SIDE,
                rgb_direct: bool = False) -> np.ndarray:
    """Decode JPEG bytes to RGB uint8 (H, W, 3). Raises CodecError for empty, corrupt or truncated data,
    and -- before decoding anything -- for a header size other than `expected_size` (w, h) or larger
    than `max_side`.

    ``rgb_direct``: let OpenCV decode straight to RGB (saves the BGR -> RGB copy; the cloud chain's
    optimised decode). Same checks, errors and pixels; on OpenCV < 4.10 (no IMREAD_COLOR_RGB) it is the
    plain path."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    if buf.size < 4:
        raise CodecError(f'JPEG payload of {buf.size} bytes is empty or truncated')
    if buf[0] != 0xFF or buf[1] != 0xD8:
        raise CodecError('payload is not a JPEG (no SOI marker)')
    if buf[-2] != 0xFF or buf[-1] != 0xD9:
        raise CodecError(f'JPEG of {buf.size} bytes is truncated (no EOI marker)')
    size = jpeg_size(buf)
    if size is None:
        raise CodecError(f'corrupt JPEG of {buf.size} bytes (no frame header)')
    if expected_size is not None and tuple(size) != tuple(expected_size):
        raise CodecError(f'JPEG header says {size[0]}x{size[1]}, expected {expected_size[0]}x{expected_size[1]}')
    if not (0 < size[0] <= max_side and 0 < size[1] <= max_side):
        raise CodecError(f'JPEG header size {size[0]}x{size[1]} is zero or over {max_side} px a side')
    direct = rgb_direct and _IMREAD_RGB is not None
    try:
        img = cv2.imdecode(buf, _IMREAD_RGB if direct else cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV asserts on some corrupt headers instead of returning None
        raise CodecError(f'corrupt JPEG of {buf.size} bytes ({str(exc).strip().splitlines()[-1]})') from None
    if img is None:
        raise CodecError(f'corrupt JPEG of {buf.size} bytes')
    return img if direct else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def edge_encode(image: np.ndarray, scale: int, quality: int) -> bytes:
    """What the edge streamer sends for one frame: downsample(scale) then JPEG(quality)."""
    return encode_jpeg(downsample(image, scale), quality)


def edge_roundtrip(image: np.ndarray, scale: int, quality: int) -> tuple[np.ndarray, int]:
    """The low-resolution frame the cloud decodes, and the number of bytes sent."""
    data = edge_encode(image, scale, quality)
    return decode_jpeg(data), len(data)

"""Fuzzing the cloud's frame path without ROS: decode_jpeg -> Restorer.restore -> tail.analyze.

Payloads are random bytes (with and without JPEG start/end markers) and mutations of real JPEGs (byte
flips, truncation, insertions, frame-header size changes). The property: every payload is either
rejected with CodecError (what the restorer node turns into a log line + counter) or yields a frame
of exactly the source size whose tail verdict is well formed -- never another exception, never a
frame of the wrong size, never a huge allocation. The example counts are printed (pytest -s) and
recorded in docs/robustness.md.
"""
import collections

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runespoor_cloud.restore import Restorer
from runespoor_cloud.tail import analyze
from runespoor_edge.codec import CodecError, decode_jpeg, edge_encode, jpeg_size

torch.set_num_threads(1)

N_RANDOM = 400
N_MUTATED = 600
def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RESTORER = Restorer({2: 'bilinear', 4: 'bilinear', 6: 'bilinear', 8: 'bilinear'}, weights_dir='.')


def _seed_frames():
    """(jpeg bytes, source (w, h), scale): what an edge sends for a few synthetic camera frames."""
    rng = np.random.default_rng(0)
    out = []
    for (w, h), scale, q in [((96, 64), 2, 75), ((128, 96), 4, 40), ((100, 50), 6, 95), ((64, 64), 8, 60),
                             ((48, 32), 1, 90)]:
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : w // 2] = (200, 30, 30)                           # two large regions ...
        frame[h // 3: h // 3 + 4, w // 4: w // 4 + 4] = (20, 200, 20)  # ... and a small one
        frame = np.clip(frame.astype(int) + rng.integers(-10, 10, frame.shape), 0, 255).astype(np.uint8)
        out.append((edge_encode(frame, scale, q), (w, h), scale))
    return out


SEEDS = _seed_frames()


def cloud_path(payload: bytes, source: tuple[int, int], scale: int) -> str:
    """What the restorer + segmentation + tail detector do with one payload; returns the outcome."""
    w, h = source
    expected = (w // scale, h // scale)
    try:
        lr = decode_jpeg(payload, expected_size=expected)
    except CodecError as exc:
        assert str(exc)  # a specific reason, never empty
        with pytest.raises(CodecError):  # the optimised decode rejects it too
            decode_jpeg(payload, expected_size=expected, rgb_direct=True)
        return 'rejected'
    assert lr.dtype == np.uint8 and lr.shape == (h // scale, w // scale, 3)
    assert np.array_equal(lr, decode_jpeg(payload, expected_size=expected, rgb_direct=True))
    hr = RESTORER.restore(lr, scale, source_size=(w, h))
    assert hr.dtype == np.uint8 and hr.shape == (h, w, 3)
    # a stand-in segmentation (the frozen network is not the subject here): 8 colour classes
    labels = ((hr[..., 0] >> 7) | ((hr[..., 1] >> 7) << 1) | ((hr[..., 2] >> 7) << 2)).astype(np.uint8)
    res = analyze(labels, downsample=2)
    assert 0.0 <= res.small_region_ratio <= 1.0
    assert res.is_tail == (res.small_region_ratio < res.tail_threshold)
    assert 0 <= res.num_small_regions <= res.num_regions
    return 'decoded'


def test_seed_frames_pass_the_whole_path():
    assert [cloud_path(*s) for s in SEEDS] == ['decoded'] * len(SEEDS)


def test_fuzz_random_payloads():
    outcomes = collections.Counter()

    @fuzz(N_RANDOM)
    @given(body=st.binary(max_size=3000), markers=st.booleans(), seed=st.sampled_from(SEEDS))
    def run(body, markers, seed):
        payload = b'\xff\xd8' + body + b'\xff\xd9' if markers else body
        outcomes[cloud_path(payload, seed[1], seed[2])] += 1

    run()
    print(f'random payloads: {sum(outcomes.values())} examples, {dict(outcomes)}')
    assert sum(outcomes.values()) == N_RANDOM
    assert outcomes['rejected'] > 0


mutation = st.one_of(
    st.tuples(st.just('flip'), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just('truncate'), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just('insert'), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just('delete'), st.integers(0, 10**6), st.integers(1, 64)),
    st.tuples(st.just('size'), st.integers(0, 65535), st.integers(0, 65535)),
)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, a, v in ops:
        if not b:
            break
        i = a % len(b)
        if op == 'flip':
            b[i] ^= v
        elif op == 'truncate':
            del b[i:]
        elif op == 'insert':
            b[i:i] = bytes([v])
        elif op == 'delete':
            del b[i:i + v]
        elif op == 'size':  # forge the frame header's height/width
            sof = bytes(b).find(b'\xff\xc0')
            if sof >= 0 and sof + 9 <= len(b):
                b[sof + 5:sof + 7] = a.to_bytes(2, 'big')
                b[sof + 7:sof + 9] = v.to_bytes(2, 'big')
    return bytes(b)


def test_fuzz_mutated_jpegs():
    outcomes = collections.Counter()

    @fuzz(N_MUTATED)
    @given(seed=st.sampled_from(SEEDS), ops=st.lists(mutation, min_size=1, max_size=4))
    def run(seed, ops):
        outcomes[cloud_path(mutate(seed[0], ops), seed[1], seed[2])] += 1

    run()
    print(f'mutated JPEGs: {sum(outcomes.values())} examples, {dict(outcomes)}')
    assert sum(outcomes.values()) == N_MUTATED
    # both outcomes occur: many mutations only damage pixels, many break the stream
    assert outcomes['rejected'] > 0 and outcomes['decoded'] > 0


def test_forged_huge_header_is_rejected_before_decoding(monkeypatch):
    """A 600-byte JPEG whose header claims 20000x20000 made OpenCV allocate 1.2 GB and decode for ~9 s.
    It is rejected from the header alone: the decoder is never called (checked, not timed)."""
    import cv2
    data = mutate(SEEDS[0][0], [('size', 20000, 20000)])
    assert jpeg_size(np.frombuffer(data, np.uint8)) == (20000, 20000)

    def no_decode(*args, **kwargs):
        raise AssertionError('the forged frame reached the JPEG decoder')
    with monkeypatch.context() as m:
        m.setattr(cv2, 'imdecode', no_decode)
        for kwargs in ({}, {'expected_size': (48, 32)}, {'rgb_direct': True}):
            with pytest.raises(CodecError, match='20000x20000'):
                decode_jpeg(data, **kwargs)
    # beyond OpenCV's own pixel limit it used to raise cv2.error (not CodecError), crashing the node
    with pytest.raises(CodecError):
        decode_jpeg(mutate(SEEDS[0][0], [('size', 60000, 60000)]), max_side=70000)

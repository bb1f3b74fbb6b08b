"""runespoor_cloud.chain: the one cloud chain (decode -> restore -> segment -> tail) with the reference
(PLAIN) and the optimised options; the straight-to-RGB decode is the codec's decode; stages run alone
the way the nodes run them. No timing assertions."""
import re

import numpy as np
import pytest
import torch

from runespoor_cloud import inference as inf
from runespoor_cloud.chain import CloudChain, TailSettings, compare_outputs
from runespoor_cloud.metrics import psnr
from runespoor_cloud.tail import analyze
from runespoor_edge.codec import CodecError, decode_jpeg, edge_encode, edge_roundtrip

torch.set_num_threads(1)


def test_rgb_decode_is_the_codec_decode(val_frames):
    data = edge_encode(val_frames[0], 4, 75)
    assert np.array_equal(decode_jpeg(data, rgb_direct=True), decode_jpeg(data))
    assert np.array_equal(decode_jpeg(data, (120, 90), rgb_direct=True), decode_jpeg(data))
    for bad, size in ((data[: len(data) // 2], None), (data, (121, 90))):
        with pytest.raises(CodecError) as plain:
            decode_jpeg(bad, size)
        with pytest.raises(CodecError, match=re.escape(str(plain.value))):
            decode_jpeg(bad, size, rgb_direct=True)


def test_plain_chain_is_the_stages_one_by_one(asr4_restorer, espnet_segmenter, val_frames):
    chain = CloudChain(asr4_restorer, espnet_segmenter)
    data = edge_encode(val_frames[0], 4, 75)
    res = chain(data, 4, (480, 360))
    lr = decode_jpeg(data)
    rgb = asr4_restorer.restore(lr, 4, (480, 360))
    labels = espnet_segmenter.predict(rgb)
    assert np.array_equal(res.restored, rgb) and np.array_equal(res.labels, labels)
    ref = analyze(labels)
    assert (res.tail.small_region_ratio, res.tail.is_tail) == (ref.small_region_ratio, ref.is_tail)
    assert set(res.times_ms) == {'decode', 'restore', 'segment', 'tail', 'total'}


def test_exact_chain_matches_plain_chain(asr4_restorer, espnet_segmenter, val_frames):
    plain = CloudChain(asr4_restorer, espnet_segmenter)
    fast = CloudChain(asr4_restorer.with_options(inf.EXACT), espnet_segmenter.with_options(inf.EXACT))
    assert fast.fast_handoff and not plain.fast_handoff
    for f in val_frames:
        data = edge_encode(f, 4, 75)
        a, b = plain(data, 4, (480, 360)), fast(data, 4, (480, 360))
        cmp = compare_outputs(a, b)
        assert cmp['label_agreement'] >= 0.9995 and cmp['same_tail_verdict']
        assert set(b.times_ms) == {'decode', 'restore', 'segment', 'tail', 'total'}
        assert b.restored.shape == (360, 480, 3) and b.restored.dtype == np.uint8


def test_optimized_chain_within_stated_tolerance(asr4_restorer, espnet_segmenter, val_frames):
    opts = inf.OPTIMIZED.resolved('cpu')
    assert opts.sr_precision == ('bf16' if inf.cpu_has_native_bf16() else 'fp32')
    fr = asr4_restorer.with_options(inf.OPTIMIZED)
    plain, fast = CloudChain(asr4_restorer, espnet_segmenter), CloudChain(fr, espnet_segmenter.with_options(inf.OPTIMIZED))
    for f in val_frames:
        data = edge_encode(f, 4, 75)
        cmp = compare_outputs(plain(data, 4, (480, 360)), fast(data, 4, (480, 360)))
        assert cmp['label_agreement'] >= inf.TOLERANCE['label_agreement']
        lr = edge_roundtrip(f, 4, 75)[0]
        assert psnr(asr4_restorer.restore(lr, 4, (480, 360)), fr.restore(lr, 4, (480, 360))) >= \
            inf.TOLERANCE['restored_psnr_db']


def test_missing_stages_are_skipped(espnet_segmenter, val_frames):
    hr = val_frames[0]
    res = CloudChain(None, espnet_segmenter, tail=None).process(hr, 1, (480, 360))
    assert res.restored is hr and res.labels.shape == (360, 480) and res.tail is None
    with pytest.raises(ValueError):
        CloudChain(None, espnet_segmenter).process(hr[::4, ::4], 4, (480, 360))


def test_tail_settings_per_scale_threshold():
    labels = np.zeros((64, 64), np.uint8)
    labels[10:12, 10:12] = 3  # one small region: ratio 4 / 4096
    t = TailSettings(small_region_area=0.01, tail_threshold=0.5, downsample=1, scale_thresholds={4: 0.0001})
    chain = CloudChain(tail=t)
    assert t.threshold_for(None) == 0.5 and t.threshold_for(4) == 0.0001
    assert chain.judge(labels, None).is_tail and not chain.judge(labels, 4).is_tail

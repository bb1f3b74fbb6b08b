"""The fast cloud chain (runespoor_cloud.fastpath) against the naive one: BN folding is exact, the fp32
fast path reproduces the naive outputs, the default (reduced-precision SR) path stays within TOLERANCE.
No timing assertions: speed is measured by `runespoor bench`, never asserted."""
import numpy as np
import pytest
import torch
from torch import nn

from runespoor_cloud import fastpath as fp
from runespoor_edge.codec import CodecError, decode_jpeg, edge_encode, edge_roundtrip

torch.set_num_threads(1)


def _random_bn(n, seed):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(n, eps=1e-3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=g))
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(torch.rand(n, generator=g) + 0.1)
    return bn.eval()


@pytest.mark.parametrize('conv', [
    nn.Conv2d(5, 6, 3, padding=1, bias=False),
    nn.Conv2d(5, 6, 3, stride=2, padding=2, dilation=2, bias=True),
    nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False),
    nn.ConvTranspose2d(5, 6, 2, stride=2, bias=False),
])
def test_fold_conv_bn_is_exact(conv):
    bn = _random_bn(6 if not (isinstance(conv, nn.Conv2d) and conv.groups == 4) else 8, 1)
    x = torch.randn(2, conv.in_channels, 12, 10)
    folded = fp.fold_conv_bn(conv.eval(), bn)
    with torch.no_grad():
        ref, out = bn(conv(x)), folded(x)
    assert folded is not conv and folded.bias is not None
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_fold_conv_bn_slice_of_a_concatenation():
    a, b = nn.Conv2d(3, 4, 1, bias=False).eval(), nn.ConvTranspose2d(3, 2, 2, stride=2, bias=False).eval()
    bn = _random_bn(6, 2)
    x, y = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        ref = bn(torch.cat([a(x), b(y)], 1))
        out = torch.cat([fp.fold_conv_bn(a, bn, slice(0, 4))(x), fp.fold_conv_bn(b, bn, slice(4, 6))(y)], 1)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(fp.FastPathError):
        fp.fold_conv_bn(a, bn)  # 6 BN channels for a 4-channel conv


@pytest.fixture(scope='module')
def segmenter():
    from runespoor_cloud.segmentation import Segmenter
    return Segmenter('espnet', dataset='camvid')


def test_fold_espnet_bn_exact_on_published_weights(segmenter):
    model = segmenter.model
    folded = fp.fold_espnet_bn(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n_left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert n_bn - n_left == 5  # level1, conv, br, combine_l2_l3 BR, up_l2 BR
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert ((out - ref).abs().max() / ref.abs().max()).item() < fp.TOLERANCE['fp32_logit_rel']
    # the original model is untouched
    assert sum(isinstance(m, nn.BatchNorm2d) for m in segmenter.model.modules()) == n_bn


@pytest.fixture(scope='module')
def frames():
    from runespoor_cloud.bench import load_frames
    f, src = load_frames((480, 360), None, 2)
    assert src.startswith('camvid val'), src
    return f


@pytest.fixture(scope='module')
def restorer():
    from runespoor_cloud.bench import make_restorer
    return make_restorer(('asr',), (4,), 'cpu', None)['asr'][0]


def test_decode_rgb_is_the_codec_decode(frames):
    data = edge_encode(frames[0], 4, 75)
    assert np.array_equal(fp.decode_rgb(data), decode_jpeg(data))
    with pytest.raises(CodecError):
        fp.decode_rgb(data[: len(data) // 2])


def test_exact_fast_segmenter_matches_segmenter(segmenter, frames):
    fast = fp.optimize_segmenter(segmenter, fp.EXACT)
    for f in frames:
        ref, out = segmenter.predict(f), fast.predict(f)
        assert out.dtype == np.uint8 and out.shape == ref.shape
        assert (out == ref).mean() >= 0.9995


def test_exact_fast_restorer_matches_restorer(restorer, frames):
    fast = fp.optimize_restorer(restorer, fp.EXACT)
    lr = edge_roundtrip(frames[0], 4, 75)[0]
    ref, out = restorer.restore(lr, 4, (480, 360)), fast.restore(lr, 4, (480, 360))
    assert out.shape == ref.shape == (360, 480, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_exact_chain_matches_naive_chain(restorer, segmenter, frames):
    naive, fast = fp.CloudChain(restorer, segmenter, None), fp.CloudChain(restorer, segmenter, fp.EXACT)
    for f in frames:
        data = edge_encode(f, 4, 75)
        a, b = naive(data, 4, (480, 360)), fast(data, 4, (480, 360))
        cmp = fp.compare_outputs(a, b)
        assert cmp['label_agreement'] >= 0.9995 and cmp['same_tail_verdict']
        assert set(b.times_ms) == {'decode', 'restore', 'segment', 'tail', 'total'}


def test_optimized_chain_within_stated_tolerance(restorer, segmenter, frames):
    opts = fp.OPTIMIZED.resolved('cpu')
    assert opts.sr_precision == ('bf16' if fp.cpu_has_native_bf16() else 'fp32')
    naive, fast = fp.CloudChain(restorer, segmenter, None), fp.CloudChain(restorer, segmenter, fp.OPTIMIZED)
    fr = fp.optimize_restorer(restorer, fp.OPTIMIZED)
    for f in frames:
        data = edge_encode(f, 4, 75)
        cmp = fp.compare_outputs(naive(data, 4, (480, 360)), fast(data, 4, (480, 360)))
        assert cmp['label_agreement'] >= fp.TOLERANCE['label_agreement']
        lr = edge_roundtrip(f, 4, 75)[0]
        assert fp.psnr(restorer.restore(lr, 4, (480, 360)), fr.restore(lr, 4, (480, 360))) >= \
            fp.TOLERANCE['restored_psnr_db']


def test_bilinear_fast_path_is_identical(frames):
    from runespoor_cloud.restore import Restorer
    r = Restorer({4: 'bilinear'})
    lr = edge_roundtrip(frames[1], 4, 75)[0]
    assert np.array_equal(fp.optimize_restorer(r).restore(lr, 4, (480, 360)), r.restore(lr, 4, (480, 360)))


def test_options_are_validated():
    with pytest.raises(fp.FastPathError):
        fp.FastOptions(graph='tensorrt')
    with pytest.raises(fp.FastPathError):
        fp.FastOptions(sr_precision='int8')
    with pytest.raises(fp.FastPathError):
        fp.FastOptions(sr_precision='fp16').resolved('cpu')
    with pytest.raises(fp.FastPathError):
        fp.FastOptions(graph='cudagraph').resolved('cpu')
    # on CUDA, auto means fp16 and the jit graph becomes CUDA-graph replay (resolution only, no GPU needed)
    cuda = fp.OPTIMIZED.resolved('cuda')
    assert (cuda.sr_precision, cuda.seg_precision, cuda.graph) == ('fp16', 'fp16', 'cudagraph')
    with pytest.raises(fp.FastPathError):
        fp.configure_threads(-1)


@pytest.mark.parametrize('r', [2, 3])
def test_channels_last_pixel_shuffle_is_exact(r):
    x = torch.randn(1, 4 * r * r, 5, 7).contiguous(memory_format=torch.channels_last)
    out = fp.ChannelsLastPixelShuffle(r)(x)
    assert torch.equal(out, torch.pixel_shuffle(x, r))
    assert out.is_contiguous(memory_format=torch.channels_last)
    m = nn.Sequential(nn.Conv2d(3, 4 * r * r, 1), nn.PixelShuffle(r))
    assert fp.use_channels_last_pixel_shuffle(m) == 1 and isinstance(m[1], fp.ChannelsLastPixelShuffle)


def test_fast_wrappers_are_drop_in(restorer, segmenter):
    fr, fs = fp.optimize_restorer(restorer), fp.optimize_segmenter(segmenter)
    assert fr.methods == restorer.methods and fr.method(4) == 'asr'
    assert fs.info is segmenter.info and fs.weights == segmenter.weights and fs.num_classes == 11


def test_configure_threads_defaults_to_free_cores():
    try:
        assert 1 <= fp.free_cores() <= fp.available_cores()
        n = fp.configure_threads()
        assert 1 <= n <= fp.available_cores() and torch.get_num_threads() == n
        assert fp.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)

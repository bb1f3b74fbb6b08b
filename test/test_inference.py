"""runespoor_cloud.inference and the options of Restorer / Segmenter: BN folding is exact, the fp32 options
reproduce the reference (PLAIN) path, the channels-last pixel shuffle is exact, options are validated.
No timing assertions: speed is measured by `runespoor bench`, never asserted."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from runespoor_cloud import inference as inf
from runespoor_cloud.restore import Restorer
from runespoor_edge.codec import edge_roundtrip

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
    folded = inf.fold_conv_bn(conv.eval(), bn)
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
        out = torch.cat([inf.fold_conv_bn(a, bn, slice(0, 4))(x), inf.fold_conv_bn(b, bn, slice(4, 6))(y)], 1)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(inf.InferenceError):
        inf.fold_conv_bn(a, bn)  # 6 BN channels for a 4-channel conv


def test_fold_espnet_bn_exact_on_published_weights(espnet_segmenter):
    model = espnet_segmenter.model
    folded = inf.fold_espnet_bn(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    n_left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert n_bn - n_left == 5  # level1, conv, br, combine_l2_l3 BR, up_l2 BR
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert ((out - ref).abs().max() / ref.abs().max()).item() < inf.TOLERANCE['fp32_logit_rel']
    # the original model is untouched
    assert sum(isinstance(m, nn.BatchNorm2d) for m in espnet_segmenter.model.modules()) == n_bn


def test_plain_is_the_default_and_the_reference_path(asr4_restorer, espnet_segmenter):
    assert inf.PLAIN.plain and not inf.EXACT.plain and not inf.OPTIMIZED.plain
    assert not asr4_restorer.fast and not asr4_restorer.runners and not espnet_segmenter.fast and espnet_segmenter.runner is None
    # rgb_decode is the chain's: it leaves the models on the reference path
    assert Restorer({4: 'bilinear'}, options=replace(inf.PLAIN, rgb_decode=True)).fast is False


def test_exact_segmenter_matches_plain_segmenter(espnet_segmenter, val_frames):
    fast = espnet_segmenter.with_options(inf.EXACT)
    assert fast.fast and fast.model is espnet_segmenter.model and fast.runner.module is not espnet_segmenter.model
    for f in val_frames:
        ref, out = espnet_segmenter.predict(f), fast.predict(f)
        assert out.dtype == np.uint8 and out.shape == ref.shape
        assert (out == ref).mean() >= 0.9995


def test_exact_restorer_matches_plain_restorer(asr4_restorer, val_frames):
    fast = asr4_restorer.with_options(inf.EXACT)
    lr = edge_roundtrip(val_frames[0], 4, 75)[0]
    ref, out = asr4_restorer.restore(lr, 4, (480, 360)), fast.restore(lr, 4, (480, 360))
    assert out.shape == ref.shape == (360, 480, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_bilinear_is_identical_with_any_options(val_frames):
    r = Restorer({4: 'bilinear'})
    lr = edge_roundtrip(val_frames[1], 4, 75)[0]
    assert np.array_equal(r.with_options(inf.OPTIMIZED).restore(lr, 4, (480, 360)), r.restore(lr, 4, (480, 360)))


def test_stand_in_models_through_the_constructor(val_frames):
    from runespoor_cloud.models import build
    torch.manual_seed(0)
    model = build('carn_m', scale=2).eval()
    r = Restorer({2: 'sr'}, weights_dir='/nonexistent', models={2: model})
    assert r.models[2] is model and 2 not in r.files
    lr = edge_roundtrip(val_frames[0], 2, 75)[0]
    assert r.restore(lr, 2, (480, 360)).shape == (360, 480, 3)
    assert r.with_options(inf.EXACT).runners[2].module is not model  # the runner works on a copy


def test_options_are_validated():
    with pytest.raises(inf.InferenceError):
        inf.InferenceOptions(graph='tensorrt')
    with pytest.raises(inf.InferenceError):
        inf.InferenceOptions(sr_precision='int8')
    with pytest.raises(inf.InferenceError):
        inf.InferenceOptions(sr_precision='fp16').resolved('cpu')
    with pytest.raises(inf.InferenceError):
        inf.InferenceOptions(graph='cudagraph').resolved('cpu')
    # on CUDA, auto means fp16 and the jit graph becomes CUDA-graph replay (resolution only, no GPU needed)
    cuda = inf.OPTIMIZED.resolved('cuda')
    assert (cuda.sr_precision, cuda.seg_precision, cuda.graph) == ('fp16', 'fp16', 'cudagraph')
    with pytest.raises(inf.InferenceError):
        inf.configure_threads(-1)


@pytest.mark.parametrize('r', [2, 3])
def test_channels_last_pixel_shuffle_is_exact(r):
    x = torch.randn(1, 4 * r * r, 5, 7).contiguous(memory_format=torch.channels_last)
    out = inf.ChannelsLastPixelShuffle(r)(x)
    assert torch.equal(out, torch.pixel_shuffle(x, r))
    assert out.is_contiguous(memory_format=torch.channels_last)
    m = nn.Sequential(nn.Conv2d(3, 4 * r * r, 1), nn.PixelShuffle(r))
    assert inf.use_channels_last_pixel_shuffle(m) == 1 and isinstance(m[1], inf.ChannelsLastPixelShuffle)


def test_with_options_keeps_the_served_things(asr4_restorer, espnet_segmenter):
    fr, fs = asr4_restorer.with_options(inf.OPTIMIZED), espnet_segmenter.with_options(inf.OPTIMIZED)
    assert fr.methods == asr4_restorer.methods and fr.method(4) == 'asr' and fr.models is asr4_restorer.models
    assert fs.info is espnet_segmenter.info and fs.weights == espnet_segmenter.weights and fs.num_classes == 11
    assert not asr4_restorer.fast and not espnet_segmenter.fast  # the originals keep their options


def test_configure_threads_defaults_to_free_cores():
    try:
        assert 1 <= inf.free_cores() <= inf.available_cores()
        n = inf.configure_threads()
        assert 1 <= n <= inf.available_cores() and torch.get_num_threads() == n
        assert inf.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)

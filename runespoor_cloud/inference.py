"""Running a frozen torch model fast: the options :class:`~runespoor_cloud.restore.Restorer` and
:class:`~runespoor_cloud.segmentation.Segmenter` take, and the model runner that applies them.

``options=PLAIN`` (the default of both classes) is the reference path: eager fp32 NCHW under ``no_grad``,
the code every optimisation is checked against. Any other :class:`InferenceOptions` makes the same object
run its model(s) through a :class:`ModelRunner`; each optimisation is switchable so that ``runespoor bench``
can measure what it buys:

- ``rgb_decode``: the cloud chain (runespoor_cloud/chain.py) decodes the JPEG straight to RGB
  (``IMREAD_COLOR_RGB``, no colour-conversion copy); same pixels as the codec's decode.
- ``inference_mode``: ``torch.inference_mode`` instead of ``no_grad`` (no version counters / view tracking).
- ``fold_bn``: Conv+BN folding (:func:`fold_espnet_bn` for ESPNet: the conv-BN-PReLU blocks (CBR), the
  classifier + ``br``, the two halves of the decoder's ``BR`` that follow pure convolutions, and the
  transposed conv + BN of ``up_l2``). Exact up to float rounding (tested to 1e-4 of the logits' range).
- ``channels_last``: NHWC tensors for oneDNN convolutions (a decoded HxWx3 frame *is* NHWC, so the frame
  reaches the model with one uint8 -> float pass and no transpose), with an NHWC pixel shuffle for SR.
- ``graph`` (``seg_graph`` for the segmentation model when different): ``'jit'`` = TorchScript trace +
  freeze on CPU (constants folded, weights prepared once), ``'compile'`` = ``torch.compile`` with inductor
  freezing (fuses ESPNet's BN/PReLU/add/concat chains; no gain for CARN-M; tens of seconds to compile each
  input size, cached on disk), ``'cudagraph'`` = CUDA graph replay per input shape (GPU only), ``'none'``.
- ``sr_precision`` / ``seg_precision``: ``fp32``, ``bf16`` (CPU with native AVX512-BF16/AMX only),
  ``fp16`` (CUDA) or ``auto`` (SR: bf16 on such CPUs, fp16 on CUDA, else fp32; segmentation: fp16 on CUDA,
  fp32 on CPU, where bf16 buys little for ESPNet's memory-bound layers and would flip labels).
- threads: :func:`configure_threads` (the ``threads`` argument of both classes).

Buffers: with options the model input is a tensor reused from frame to frame, the restored frame can stay a
tensor quantized to 0..255 in place (as the reference path's uint8 round trip does) and the segmenter's input
normalisation (BGR, mean/std) is one 1x1 convolution.

Tolerance (``TOLERANCE``, checked by test/test_inference.py and measured by the benchmark): fp32 options
match the reference path to float rounding; the bf16 SR path's restored frame is within
``restored_psnr_db`` of the reference one, and the chain's labels agree with the reference chain's on at
least ``label_agreement`` of the pixels -- or, where the segmentation model itself is less stable than that
(imperceptible +-1 grey-level noise on its input changes more labels), at least as many as that noise
leaves unchanged.
"""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, replace
from typing import Callable, Optional

import cv2
import numpy as np
import torch
from torch import nn

from runespoor_cloud.models.espnet import CBR

log = logging.getLogger(__name__)

PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
GRAPHS = ('none', 'jit', 'compile', 'cudagraph')
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

#: What "the same output" means for the optimised paths (measured against the reference path on CamVid
#: val frames).
TOLERANCE = {
    'fp32_logit_rel': 1e-4,      # fp32 options: max |fast - plain| / max |plain| of logits / SR output
    'restored_psnr_db': 45.0,    # reduced-precision SR: PSNR of the fast restored frame vs the plain one
    'label_agreement': 0.99,     # fraction of label pixels equal to the plain chain's, or the model's own
                                 # noise floor where lower (labels of the plain restored frame + uniform
                                 # +-1 grey-level noise vs without: 0.997 for CamVid ESPNet at 480x360,
                                 # 0.80 for Cityscapes ESPNet at 2048x1024, twice its training size)
}


class InferenceError(ValueError):
    """An option that cannot work here (e.g. bf16 on a CPU without native bf16, CUDA graphs on CPU)."""


# --------------------------------------------------------------------------- machine / threads
def cpu_has_native_bf16() -> bool:
    """True when oneDNN can run bf16 convolutions natively (AVX512-BF16 or AMX), not emulated."""
    probe = getattr(getattr(torch, 'cpu', None), '_is_avx512_bf16_supported', None)
    if callable(probe):
        try:
            if probe():
                return True
        except Exception:  # private helper: fall back to the kernel's flags
            pass
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as fh:
            for line in fh:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    return bool({'avx512_bf16', 'amx_bf16'} & flags)
    except OSError:
        pass
    return False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_cores() -> int:
    """The cores this process may use minus the load already on the machine (1-minute load average),
    at least 1."""
    cores = available_cores()
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def configure_threads(threads: int | None = None) -> int:
    """Intra-op threads for torch and OpenCV: `threads`, default the free cores (:func:`free_cores`).

    More threads than free cores is far worse than fewer: libgomp's workers spin-wait, and on the 2-core
    test machine with two other busy processes ESPNet took 3.7 s a frame at 2 threads vs 56 ms at 1.
    """
    n = int(threads) if threads else free_cores()
    if n < 1:
        raise InferenceError(f'threads must be >= 1, got {threads!r}')
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class InferenceOptions:
    rgb_decode: bool = True
    inference_mode: bool = True
    fold_bn: bool = True
    channels_last: bool = True
    graph: str = 'jit'
    sr_precision: str = 'auto'
    seg_precision: str = 'auto'
    seg_graph: str = ''          # '' = same as graph (e.g. 'compile' for the segmentation model only)

    def __post_init__(self):
        for name in ('graph', 'seg_graph'):
            g = getattr(self, name)
            if g not in GRAPHS and not (name == 'seg_graph' and g == ''):
                raise InferenceError(f'{name} must be one of {GRAPHS}, got {g!r}')
        for name in ('sr_precision', 'seg_precision'):
            if getattr(self, name) not in PRECISIONS:
                raise InferenceError(f'{name} must be one of {PRECISIONS}, got {getattr(self, name)!r}')

    @property
    def plain(self) -> bool:
        """True when no option touches the models: Restorer / Segmenter then run their reference code
        (``rgb_decode`` is the chain's and does not count)."""
        return (not (self.inference_mode or self.fold_bn or self.channels_last)
                and self.graph == 'none' and self.seg_graph in ('', 'none')
                and self.sr_precision == 'fp32' and self.seg_precision == 'fp32')

    def resolved(self, device: str | torch.device) -> 'InferenceOptions':
        """'auto' precisions and graph settled for `device`; raises InferenceError for impossible ones."""
        dev = torch.device(device)
        cuda = dev.type == 'cuda'

        def pick(p: str, cpu_auto: str) -> str:
            if p == 'auto':
                return 'fp16' if cuda else cpu_auto
            if p == 'bf16' and not cuda and not cpu_has_native_bf16():
                raise InferenceError('bf16 on this CPU would be emulated (no AVX512-BF16/AMX): use fp32')
            if p == 'fp16' and not cuda:
                raise InferenceError('fp16 inference is for CUDA devices; use fp32 or bf16 on CPU')
            return p

        def settle(graph: str) -> str:
            if graph == 'cudagraph' and not cuda:
                raise InferenceError('graph="cudagraph" needs a CUDA device')
            if graph == 'jit' and cuda:
                return 'cudagraph'  # TorchScript freezing targets oneDNN; on GPU, replay CUDA graphs instead
            return graph

        return replace(self, graph=settle(self.graph), seg_graph=settle(self.seg_graph or self.graph),
                       sr_precision=pick(self.sr_precision, 'bf16' if cpu_has_native_bf16() else 'fp32'),
                       seg_precision=pick(self.seg_precision, 'fp32'))

    def describe(self) -> str:
        if self.plain and not self.rgb_decode:
            return 'plain (eager fp32)'
        parts = [k for k in ('rgb_decode', 'inference_mode', 'fold_bn', 'channels_last') if getattr(self, k)]
        graphs = [f'graph={self.graph}'] + ([f'seg_graph={self.seg_graph}']
                                             if self.seg_graph and self.seg_graph != self.graph else [])
        return '+'.join(parts + graphs + [f'sr={self.sr_precision}', f'seg={self.seg_precision}'])


#: Eager fp32 NCHW under no_grad, no folding, codec decode: the reference path (the default).
PLAIN = InferenceOptions(rgb_decode=False, inference_mode=False, fold_bn=False, channels_last=False,
                         graph='none', sr_precision='fp32', seg_precision='fp32')
#: Every output-preserving (fp32) optimization.
EXACT = InferenceOptions(sr_precision='fp32', seg_precision='fp32')
#: The nodes' default (`optimized: true`): reduced-precision SR where the hardware runs it natively.
OPTIMIZED = InferenceOptions()

#: OPTIMIZED with the segmentation model compiled by inductor (weights frozen): faster ESPNet, but the
#: first frame of each input size takes tens of seconds to compile (cached on disk afterwards).
COMPILED = replace(OPTIMIZED, seg_graph='compile')

#: The cumulative steps the benchmark measures ("what each optimization bought"), in order.
ABLATION: tuple[tuple[str, InferenceOptions], ...] = (
    ('naive', PLAIN),
    ('+rgb_decode', replace(PLAIN, rgb_decode=True)),
    ('+inference_mode', replace(PLAIN, rgb_decode=True, inference_mode=True)),
    ('+fold_bn', replace(PLAIN, rgb_decode=True, inference_mode=True, fold_bn=True)),
    ('+channels_last', replace(PLAIN, rgb_decode=True, inference_mode=True, fold_bn=True, channels_last=True)),
    ('+jit_freeze', EXACT),
    ('+reduced_precision_sr', OPTIMIZED),
)


def grad_context(options: InferenceOptions):
    """The autograd context an inference runs under with `options`."""
    return torch.inference_mode() if options.inference_mode else torch.no_grad()


def check_rgb(rgb, what: str) -> None:
    """Raise ValueError unless `rgb` is an RGB uint8 HxWx3 array (the frame contract of restore/predict)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'{what} expects an RGB uint8 HxWx3 frame, got '
                         f'{getattr(rgb, "dtype", type(rgb))} {getattr(rgb, "shape", "")}')


# --------------------------------------------------------------------------- Conv+BN folding
def fold_conv_bn(conv: nn.Module, bn: nn.BatchNorm2d, out_slice: slice | None = None) -> nn.Module:
    """A copy of `conv` (Conv2d or ConvTranspose2d, groups=1 for transposed) that computes
    ``bn(conv(x))`` (BN in eval mode, running statistics). ``out_slice`` selects the BN channels that
    belong to this conv when the BN follows a concatenation of several convs."""
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None:
        raise InferenceError(f'cannot fold {type(bn).__name__}: needs BatchNorm2d with running statistics')
    sl = out_slice if out_slice is not None else slice(0, bn.num_features)
    with torch.no_grad():
        std = (bn.running_var[sl] + bn.eps).sqrt()
        scale = (bn.weight[sl] if bn.affine else torch.ones_like(std)) / std
        shift = (bn.bias[sl] if bn.affine else torch.zeros_like(std)) - bn.running_mean[sl] * scale
        new = copy.deepcopy(conv)
        if isinstance(conv, nn.ConvTranspose2d):
            if conv.groups != 1:
                raise InferenceError('folding BN into a grouped transposed conv is not supported')
            w = new.weight  # (in, out, kh, kw)
            if w.shape[1] != scale.numel():
                raise InferenceError(f'BN slice has {scale.numel()} channels, conv outputs {w.shape[1]}')
            w.mul_(scale.view(1, -1, 1, 1))
        elif isinstance(conv, nn.Conv2d):
            w = new.weight  # (out, in/groups, kh, kw)
            if w.shape[0] != scale.numel():
                raise InferenceError(f'BN slice has {scale.numel()} channels, conv outputs {w.shape[0]}')
            w.mul_(scale.view(-1, 1, 1, 1))
        else:
            raise InferenceError(f'cannot fold BN into {type(conv).__name__}')
        bias = conv.bias.detach() * scale + shift if conv.bias is not None else shift.clone()
        new.bias = nn.Parameter(bias.to(w.dtype), requires_grad=False)
    return new


def fold_espnet_bn(model: nn.Module) -> nn.Module:
    """A copy of an ESPNet (runespoor_cloud.models.espnet) with every BN that follows a pure convolution
    folded into it; those BNs become Identity (the PReLUs stay). BNs after a sum or a concatenation that
    contains non-linear branches (the ESP blocks, b1/b2/b3) cannot be folded exactly and are kept.
    Folded: encoder.level1 and conv (CBR), encoder.classifier + br, combine_l2_l3[0].bn (its halves into
    level3_C and up_l3), up_l2 (ConvTranspose2d + BR)."""
    m = copy.deepcopy(model).eval()
    for mod in list(m.modules()):
        if isinstance(mod, CBR) and isinstance(mod.bn, nn.BatchNorm2d):
            mod.conv = fold_conv_bn(mod.conv, mod.bn)
            mod.bn = nn.Identity()
    e = m.encoder
    c = e.classifier.conv.out_channels
    # output2_c = up_l3(br(classifier(output2_cat)))
    e.classifier.conv = fold_conv_bn(e.classifier.conv, m.br)
    m.br = nn.Identity()
    # combine_l2_l3[0] = BR(2C) over cat([level3_C(output1_cat), up_l3(...)]): two pure convs -> fold halves
    comb_bn = m.combine_l2_l3[0].bn
    m.level3_C.conv = fold_conv_bn(m.level3_C.conv, comb_bn, slice(0, c))
    m.up_l3[0] = fold_conv_bn(m.up_l3[0], comb_bn, slice(c, 2 * c))
    m.combine_l2_l3[0].bn = nn.Identity()
    # up_l2 = Sequential(ConvTranspose2d, BR)
    m.up_l2[0] = fold_conv_bn(m.up_l2[0], m.up_l2[1].bn)
    m.up_l2[1].bn = nn.Identity()
    return m


def fold_for(arch: str) -> Callable[[nn.Module], nn.Module]:
    """The BN folding for a registered architecture (ESPNet's own, else Conv2d + BatchNorm2d pairs)."""
    return fold_espnet_bn if arch == 'espnet' else fold_bn_generic


def fold_bn_generic(model: nn.Module) -> nn.Module:
    """Conv2d directly followed by BatchNorm2d inside an nn.Sequential, for architectures other than ESPNet
    (CARN has no BN: returned unchanged)."""
    m = copy.deepcopy(model).eval()
    for mod in list(m.modules()):
        if isinstance(mod, nn.Sequential):
            keys = list(mod._modules)
            for a, b in zip(keys, keys[1:]):
                conv, bn = mod._modules[a], mod._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    mod._modules[a] = fold_conv_bn(conv, bn)
                    mod._modules[b] = nn.Identity()
    return m


# --------------------------------------------------------------------------- channels-last pixel shuffle
class ChannelsLastPixelShuffle(nn.Module):
    """nn.PixelShuffle for NHWC tensors as one permuting copy whose inner run is the `c` output channels
    (torch's kernel is slower on channels-last bf16 input: 14 vs 9 ms for 256x180x240). Exact (a copy)."""

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.r = int(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        r = self.r
        c = ch // (r * r)
        y = x.permute(0, 2, 3, 1).reshape(n, h, w, c, r, r).permute(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c)
        return y.permute(0, 3, 1, 2)


def use_channels_last_pixel_shuffle(model: nn.Module) -> int:
    """Replace every nn.PixelShuffle in `model` (in place) by ChannelsLastPixelShuffle; returns how many."""
    n = 0
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.PixelShuffle):
                setattr(mod, name, ChannelsLastPixelShuffle(child.upscale_factor))
                n += 1
    return n


# --------------------------------------------------------------------------- model runners
class _CudaGraphRunner:
    """Replays a CUDA graph of `module` per input shape (static input/output buffers). Written for GPU
    machines; not exercised on the CPU-only development machine (falls back to eager on any error)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.graphs: dict[tuple, tuple] = {}
        self.failed: Optional[str] = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed:
            return self.module(x)
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        entry = self.graphs.get(key)
        if entry is None:
            try:
                static_in = x.clone()
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):  # warm-up (cuDNN autotuning) outside the capture
                        self.module(static_in)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self.module(static_in)
                entry = self.graphs[key] = (graph, static_in, static_out)
            except Exception as exc:  # capture is best effort; eager is always correct
                self.failed = f'{type(exc).__name__}: {exc}'
                log.warning('CUDA graph capture failed, running eagerly: %s', self.failed)
                return self.module(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


class ModelRunner:
    """One frozen model prepared per InferenceOptions: copy, fold, layout, dtype, graph; call it on tensors.

    Input: Bx3xHxW in any float dtype/layout; it is cast to the run dtype and layout (a no-op when the
    caller already prepared it). Output: the model's output in the run dtype."""

    def __init__(self, model: nn.Module, opts: InferenceOptions, device: str | torch.device, precision: str,
                 fold: Callable[[nn.Module], nn.Module] | None = None, graph: str | None = None):
        self.opts = opts
        self.graph = graph or opts.graph
        self.device = torch.device(device)
        self.dtype = DTYPES[precision]
        self.memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
        m = fold(model) if (opts.fold_bn and fold is not None) else copy.deepcopy(model)
        m = m.eval().to(self.device)
        for p in m.parameters():
            p.requires_grad_(False)
        m = m.to(memory_format=self.memory_format).to(self.dtype)
        if opts.channels_last:
            use_channels_last_pixel_shuffle(m)  # m is this runner's own copy
        self.module = m
        if self.device.type == 'cuda':
            torch.backends.cudnn.benchmark = True  # fixed frame sizes: let cuDNN pick the fastest kernels
        self._fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.graph_note = ''

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, self.dtype, non_blocking=True).contiguous(memory_format=self.memory_format)

    def _build(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        g = self.graph
        if g == 'jit':
            try:
                with torch.no_grad():
                    traced = torch.jit.trace(self.module, x, check_trace=False)
                    frozen = torch.jit.freeze(traced.eval())
                    for _ in range(2):  # the profiling executor optimizes the graph on the first runs
                        frozen(x)
                    return frozen
            except Exception as exc:  # an architecture TorchScript cannot trace: eager still works
                self.graph_note = f'jit failed ({type(exc).__name__}: {exc}); eager'
                log.warning('TorchScript freeze failed, running eagerly: %s', exc)
                return self.module
        if g == 'compile':
            # freezing: weights become constants, so inductor pre-packs them and fuses conv + pointwise ops
            fn = torch.compile(self.module, dynamic=False, options={'freezing': True})
            with torch.no_grad():
                fn(x)  # compiles now, not on the first real frame
            return fn
        if g == 'cudagraph':
            return _CudaGraphRunner(self.module)
        return self.module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        if self._fn is None:
            self._fn = self._build(x)
        return self._fn(x)

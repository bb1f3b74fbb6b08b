"""A fast cloud chain (JPEG decode -> restore -> segment -> tail detector) with measured, bounded output error.

The naive chain is what the plain classes do frame by frame: ``decode_jpeg`` -> ``Restorer.restore`` (eager
fp32 NCHW, uint8 out) -> ``Segmenter.predict`` (eager fp32 NCHW under ``no_grad``) -> ``tail.analyze``.
:class:`CloudChain` runs it with ``options=None`` and the fast version with :class:`FastOptions`; the
optimizations, each switchable so ``runespoor bench`` can measure what it buys:

- ``inference_mode``: ``torch.inference_mode`` instead of ``no_grad`` (no version counters / view tracking).
- ``fold_bn``: Conv+BN folding for ESPNet (:func:`fold_espnet_bn`): the conv-BN-PReLU blocks (CBR), the
  classifier + ``br``, the two halves of the decoder's ``BR`` that follow pure convolutions, and the
  transposed conv + BN of ``up_l2``. Exact up to float rounding (tested to 1e-4 of the logits' range).
- ``channels_last``: NHWC tensors for oneDNN convolutions (a decoded HxWx3 frame *is* NHWC, so the frame
  reaches the model with one uint8 -> float pass and no transpose), with an NHWC pixel shuffle for SR.
- ``graph`` (``seg_graph`` for the segmentation model when different): ``'jit'`` = TorchScript trace +
  freeze on CPU (constants folded, weights prepared once), ``'compile'`` = ``torch.compile`` with inductor
  freezing (fuses ESPNet's BN/PReLU/add/concat chains; no gain for CARN-M; tens of seconds to compile each
  input size, cached on disk), ``'cudagraph'`` = CUDA graph replay per input shape (GPU only), ``'none'``.
- ``sr_precision`` / ``seg_precision``: ``fp32``, ``bf16`` (CPU with native AVX512-BF16/AMX only),
  ``fp16`` (CUDA) or ``auto`` (SR: bf16 on such CPUs, fp16 on CUDA, else fp32; segmentation: fp16 on CUDA,
  fp32 on CPU, where bf16 buys little for ESPNet's memory-bound layers and would flip labels).
- buffers: the JPEG is decoded straight to RGB (``IMREAD_COLOR_RGB``, no colour-conversion copy) and
  converted into a model-input tensor reused from frame to frame; the restored frame stays a tensor and
  is quantized to 0..255 in place (as the naive chain's uint8 round trip does) before segmentation, and the
  segmenter's input normalisation (BGR, mean/std) is one 1x1 convolution.

Tolerance (``TOLERANCE``, checked by test/test_bench_fastpath.py and measured by the benchmark): fp32
paths match the naive chain to float rounding; the bf16 SR path's restored frame is within
``restored_psnr_db`` of the naive one, and the chain's labels agree with the naive chain's on at least
``label_agreement`` of the pixels -- or, where the segmentation model itself is less stable than that
(imperceptible +-1 grey-level noise on its input changes more labels), at least as many as that noise
leaves unchanged.

Logic only (no ROS). ``optimize_segmenter(seg)`` / ``optimize_restorer(r)`` wrap the other modules'
classes without changing them; their models are copied, so the originals stay usable (e.g. for training).
"""
from __future__ import annotations

import copy
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
GRAPHS = ('none', 'jit', 'compile', 'cudagraph')
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

#: What "the same output" means for the fast chain (measured against the naive chain on CamVid val frames).
TOLERANCE = {
    'fp32_logit_rel': 1e-4,      # fp32 paths: max |fast - naive| / max |naive| of logits / SR output
    'restored_psnr_db': 45.0,    # reduced-precision SR: PSNR of the fast restored frame vs the naive one
    'label_agreement': 0.99,     # fraction of label pixels equal to the naive chain's, or the model's own
                                 # noise floor where lower (labels of the naive restored frame + uniform
                                 # +-1 grey-level noise vs without: 0.997 for CamVid ESPNet at 480x360,
                                 # 0.80 for Cityscapes ESPNet at 2048x1024, twice its training size)
}


class FastPathError(ValueError):
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
        raise FastPathError(f'threads must be >= 1, got {threads!r}')
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class FastOptions:
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
                raise FastPathError(f'{name} must be one of {GRAPHS}, got {g!r}')
        for name in ('sr_precision', 'seg_precision'):
            if getattr(self, name) not in PRECISIONS:
                raise FastPathError(f'{name} must be one of {PRECISIONS}, got {getattr(self, name)!r}')

    def resolved(self, device: str | torch.device) -> 'FastOptions':
        """'auto' precisions and graph settled for `device`; raises FastPathError for impossible ones."""
        dev = torch.device(device)
        cuda = dev.type == 'cuda'

        def pick(p: str, cpu_auto: str) -> str:
            if p == 'auto':
                return 'fp16' if cuda else cpu_auto
            if p == 'bf16' and not cuda and not cpu_has_native_bf16():
                raise FastPathError('bf16 on this CPU would be emulated (no AVX512-BF16/AMX): use fp32')
            if p == 'fp16' and not cuda:
                raise FastPathError('fp16 inference is for CUDA devices; use fp32 or bf16 on CPU')
            return p

        def settle(graph: str) -> str:
            if graph == 'cudagraph' and not cuda:
                raise FastPathError('graph="cudagraph" needs a CUDA device')
            if graph == 'jit' and cuda:
                return 'cudagraph'  # TorchScript freezing targets oneDNN; on GPU, replay CUDA graphs instead
            return graph

        return replace(self, graph=settle(self.graph), seg_graph=settle(self.seg_graph or self.graph),
                       sr_precision=pick(self.sr_precision, 'bf16' if cpu_has_native_bf16() else 'fp32'),
                       seg_precision=pick(self.seg_precision, 'fp32'))

    def describe(self) -> str:
        parts = [k for k in ('inference_mode', 'fold_bn', 'channels_last') if getattr(self, k)]
        graphs = [f'graph={self.graph}'] + ([f'seg_graph={self.seg_graph}']
                                             if self.seg_graph and self.seg_graph != self.graph else [])
        return '+'.join(parts + graphs + [f'sr={self.sr_precision}', f'seg={self.seg_precision}'])


#: Eager fp32 NCHW under no_grad, no folding: what the plain classes do.
NAIVE = FastOptions(inference_mode=False, fold_bn=False, channels_last=False, graph='none',
                    sr_precision='fp32', seg_precision='fp32')
#: Every output-preserving (fp32) optimization.
EXACT = FastOptions(sr_precision='fp32', seg_precision='fp32')
#: The default fast chain (reduced-precision SR where the hardware runs it natively).
OPTIMIZED = FastOptions()

#: OPTIMIZED with the segmentation model compiled by inductor (weights frozen): faster ESPNet, but the
#: first frame of each input size takes tens of seconds to compile (cached on disk afterwards).
COMPILED = replace(OPTIMIZED, seg_graph='compile')

#: The cumulative steps the benchmark measures ("what each optimization bought"), in order.
ABLATION: tuple[tuple[str, FastOptions], ...] = (
    ('naive', NAIVE),
    ('+inference_mode', replace(NAIVE, inference_mode=True)),
    ('+fold_bn', replace(NAIVE, inference_mode=True, fold_bn=True)),
    ('+channels_last', replace(NAIVE, inference_mode=True, fold_bn=True, channels_last=True)),
    ('+jit_freeze', EXACT),
    ('+reduced_precision_sr', OPTIMIZED),
)


def _grad_ctx(opts: FastOptions):
    return torch.inference_mode() if opts.inference_mode else torch.no_grad()


# --------------------------------------------------------------------------- Conv+BN folding
def fold_conv_bn(conv: nn.Module, bn: nn.BatchNorm2d, out_slice: slice | None = None) -> nn.Module:
    """A copy of `conv` (Conv2d or ConvTranspose2d, groups=1 for transposed) that computes
    ``bn(conv(x))`` (BN in eval mode, running statistics). ``out_slice`` selects the BN channels that
    belong to this conv when the BN follows a concatenation of several convs."""
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None:
        raise FastPathError(f'cannot fold {type(bn).__name__}: needs BatchNorm2d with running statistics')
    sl = out_slice if out_slice is not None else slice(0, bn.num_features)
    with torch.no_grad():
        std = (bn.running_var[sl] + bn.eps).sqrt()
        scale = (bn.weight[sl] if bn.affine else torch.ones_like(std)) / std
        shift = (bn.bias[sl] if bn.affine else torch.zeros_like(std)) - bn.running_mean[sl] * scale
        new = copy.deepcopy(conv)
        if isinstance(conv, nn.ConvTranspose2d):
            if conv.groups != 1:
                raise FastPathError('folding BN into a grouped transposed conv is not supported')
            w = new.weight  # (in, out, kh, kw)
            if w.shape[1] != scale.numel():
                raise FastPathError(f'BN slice has {scale.numel()} channels, conv outputs {w.shape[1]}')
            w.mul_(scale.view(1, -1, 1, 1))
        elif isinstance(conv, nn.Conv2d):
            w = new.weight  # (out, in/groups, kh, kw)
            if w.shape[0] != scale.numel():
                raise FastPathError(f'BN slice has {scale.numel()} channels, conv outputs {w.shape[0]}')
            w.mul_(scale.view(-1, 1, 1, 1))
        else:
            raise FastPathError(f'cannot fold BN into {type(conv).__name__}')
        bias = conv.bias.detach() * scale + shift if conv.bias is not None else shift.clone()
        new.bias = nn.Parameter(bias.to(w.dtype), requires_grad=False)
    return new


def fold_espnet_bn(model: nn.Module) -> nn.Module:
    """A copy of an ESPNet (runespoor_cloud.models.espnet) with every BN that follows a pure convolution
    folded into it; those BNs become Identity (the PReLUs stay). BNs after a sum or a concatenation that
    contains non-linear branches (the ESP blocks, b1/b2/b3) cannot be folded exactly and are kept.
    Folded: encoder.level1 and conv (CBR), encoder.classifier + br, combine_l2_l3[0].bn (its halves into
    level3_C and up_l3), up_l2 (ConvTranspose2d + BR)."""
    from .models.espnet import CBR
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
    """One frozen model prepared per FastOptions: copy, fold, layout, dtype, graph; call it on tensors.

    Input: Bx3xHxW in any float dtype/layout; it is cast to the run dtype and layout (a no-op when the
    caller already prepared it). Output: the model's output in the run dtype."""

    def __init__(self, model: nn.Module, opts: FastOptions, device: str | torch.device, precision: str,
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


# --------------------------------------------------------------------------- segmentation
class FastSegmenter:
    """The Segmenter's predict/predict_tensor with FastOptions; same outputs within TOLERANCE.

    Normalisation (RGB 0..255 -> BGR, (v - mean) / std / 255) is one 1x1 convolution (a per-pixel channel
    permutation + affine map, exact; no padding involved)."""

    def __init__(self, seg, options: FastOptions | None = None):
        self.seg = seg
        self.device = seg.device
        self.options = (options or OPTIMIZED).resolved(self.device)
        self.num_classes = seg.num_classes
        self.info = seg.info
        fold = fold_espnet_bn if getattr(seg, 'arch', '') == 'espnet' else fold_bn_generic
        self.runner = ModelRunner(seg.model, self.options, self.device, self.options.seg_precision, fold,
                                  graph=self.options.seg_graph)
        mean = torch.tensor(seg.info.mean_bgr, dtype=torch.float32)
        std = torch.tensor(seg.info.std_bgr, dtype=torch.float32)
        w = torch.zeros(3, 3, 1, 1)
        for c in range(3):  # output channel c (BGR) reads input channel 2 - c (RGB)
            w[c, 2 - c, 0, 0] = 1.0 / (std[c] * 255.0)
        self._norm_w = w.to(self.device, self.runner.dtype)
        self._norm_b = (-mean / (std * 255.0)).to(self.device, self.runner.dtype)
        self._frame_buf: torch.Tensor | None = None
        self._lock = threading.RLock()  # the reused buffers: one frame at a time (multi-threaded executors)

    def __getattr__(self, name):  # drop-in for Segmenter: arch, weights, info, model, ... of the original
        if name == 'seg':
            raise AttributeError(name)
        return getattr(self.seg, name)

    def normalize255(self, x255: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 Bx3xHxW (any float dtype) -> the model's normalized BGR input (run dtype/layout)."""
        x = self.runner.prepare(x255)
        return F.conv2d(x, self._norm_w, self._norm_b)

    def logits255(self, x255: torch.Tensor) -> torch.Tensor:
        h, w = x255.shape[-2:]
        inp = self.normalize255(x255)
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            inp = F.pad(inp, (0, pw, 0, ph), mode='replicate')
        out = self.runner(inp)
        return out[:, :self.num_classes, :h, :w]

    def labels255(self, x255: torch.Tensor) -> torch.Tensor:
        """RGB 0..255 Bx3xHxW -> uint8 labels BxHxW (on the model's device)."""
        with _grad_ctx(self.options):
            return self.logits255(x255).argmax(1).to(torch.uint8)

    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] Bx3xHxW -> labels BxHxW (int64, like Segmenter.predict_tensor)."""
        with _grad_ctx(self.options):
            return self.logits255(x.float() * 255.0).argmax(1)

    def frame_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """RGB uint8 HxWx3 -> 1x3xHxW float 0..255 in a buffer reused while the size stays the same.
        The HxWx3 array viewed as 1x3xHxW is already channels-last: one conversion pass, no transpose."""
        src = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
        buf = self._frame_buf
        if buf is None or buf.shape != src.shape:
            buf = self._frame_buf = torch.empty(src.shape, dtype=self.runner.dtype, device=self.device,
                                                memory_format=self.runner.memory_format)
        buf.copy_(src, non_blocking=True)
        return buf

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'predict expects an RGB uint8 HxWx3 array, got '
                             f'{getattr(rgb, "dtype", type(rgb))} {getattr(rgb, "shape", "")}')
        with self._lock, _grad_ctx(self.options):
            return self.labels255(self.frame_tensor(rgb))[0].cpu().numpy()


def optimize_segmenter(seg, options: FastOptions | None = None) -> FastSegmenter:
    """The fast version of a runespoor_cloud.segmentation.Segmenter (its model is copied, not changed)."""
    return FastSegmenter(seg, options)


# --------------------------------------------------------------------------- restoration
class FastRestorer:
    """Restorer.restore / restore_tensor with FastOptions (one ModelRunner per model scale)."""

    def __init__(self, restorer, options: FastOptions | None = None):
        self.restorer = restorer
        self.device = restorer.device
        self.options = (options or OPTIMIZED).resolved(self.device)
        self.runners = {s: ModelRunner(m, self.options, self.device, self.options.sr_precision, fold_bn_generic)
                        for s, m in restorer.models.items()}
        self.memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
        self._in_bufs: dict[int, torch.Tensor] = {}
        self._lock = threading.RLock()  # the reused buffers: one frame at a time (multi-threaded executors)

    def __getattr__(self, name):  # drop-in for Restorer: methods, models, files, dataset, ... of the original
        if name == 'restorer':
            raise AttributeError(name)
        return getattr(self.restorer, name)

    def method(self, scale: int) -> str:
        return self.restorer.method(scale)

    def lr_tensor(self, lr_rgb: np.ndarray, scale: int) -> torch.Tensor:
        """RGB uint8 hxwx3 -> the SR model's input 1x3xhxw in [0,1] (run dtype and layout) in a reused
        buffer: from_numpy + permute are views; one pass converts and scales."""
        runner = self.runners[int(scale)]
        src = torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1).unsqueeze(0)
        buf = self._in_bufs.get(int(scale))
        if buf is None or buf.shape != src.shape:
            buf = self._in_bufs[int(scale)] = torch.empty(src.shape, dtype=runner.dtype, device=self.device,
                                                          memory_format=runner.memory_format)
        if self.device.type == 'cuda':
            buf.copy_(src.pin_memory() if torch.cuda.is_available() else src, non_blocking=True)
            return buf.mul_(1.0 / 255.0)
        # one fused pass on CPU: uint8 * (1/255) -> run dtype, written into the buffer
        torch.mul(src, 1.0 / 255.0, out=buf)
        return buf

    def restore255(self, lr_rgb: np.ndarray, scale: int, size_hw: tuple[int, int]) -> torch.Tensor:
        """RGB uint8 LR -> restored RGB 1x3xHxW float32 with integer values 0..255 (what the naive chain's
        uint8 round trip gives), ready for FastSegmenter.labels255."""
        scale = int(scale)
        H, W = size_hw
        if scale == 1 or self.method(scale) == 'bilinear':
            rgb = lr_rgb if lr_rgb.shape[:2] == (H, W) else \
                cv2.resize(lr_rgb, (W, H), interpolation=cv2.INTER_LINEAR)
            return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).to(self.device)
        with self._lock, _grad_ctx(self.options):
            out = self.runners[scale](self.lr_tensor(lr_rgb, scale))
            if tuple(out.shape[-2:]) != (H, W):
                out = F.interpolate(out.float(), size=(H, W), mode='bilinear', align_corners=False)
            # quantize like to_uint8 (clamp, *255, round), in fp32 so bf16/fp16 rounding of *255 is avoided
            return out.float().clamp_(0, 1).mul_(255.0).round_()

    def restore(self, lr_rgb: np.ndarray, scale: int, source_size: tuple[int, int] | None = None) -> np.ndarray:
        """Same contract as Restorer.restore: RGB uint8 LR -> RGB uint8 at source_size (w, h)."""
        if not isinstance(lr_rgb, np.ndarray) or lr_rgb.dtype != np.uint8 or lr_rgb.ndim != 3 \
                or lr_rgb.shape[2] != 3:
            raise ValueError(f'restore expects an RGB uint8 HxWx3 frame, got '
                             f'{getattr(lr_rgb, "dtype", type(lr_rgb))} {getattr(lr_rgb, "shape", "")}')
        h, w = lr_rgb.shape[:2]
        W, H = (int(source_size[0]), int(source_size[1])) if source_size else (w * int(scale), h * int(scale))
        if int(scale) == 1 or self.method(scale) == 'bilinear':
            return self.restorer.restore(lr_rgb, scale, (W, H))
        out = self.restore255(lr_rgb, scale, (H, W))
        return out[0].to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def optimize_restorer(restorer, options: FastOptions | None = None) -> FastRestorer:
    """The fast version of a runespoor_cloud.restore.Restorer (its models are copied, not changed)."""
    return FastRestorer(restorer, options)


# --------------------------------------------------------------------------- the chain
def decode_rgb(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """JPEG -> RGB uint8 decoded straight to RGB (no BGR->RGB copy). Same checks and errors as
    runespoor_edge.codec.decode_jpeg, whose pixels it reproduces exactly."""
    from runespoor_edge.codec import CodecError, decode_jpeg
    flag = getattr(cv2, 'IMREAD_COLOR_RGB', None)
    if flag is None:  # OpenCV < 4.10
        return decode_jpeg(data)
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    if buf.size < 4 or buf[0] != 0xFF or buf[1] != 0xD8 or buf[-2] != 0xFF or buf[-1] != 0xD9:
        return decode_jpeg(data)  # raises the codec's CodecError with its message
    rgb = cv2.imdecode(buf, flag)
    if rgb is None:
        raise CodecError(f'corrupt JPEG of {buf.size} bytes')
    return rgb


@dataclass
class ChainResult:
    labels: np.ndarray                 # uint8 HxW at the source size
    tail: object                       # runespoor_cloud.tail.TailResult
    times_ms: dict[str, float] = field(default_factory=dict)   # decode, restore, segment, tail, total


class CloudChain:
    """decode -> restore -> segment -> tail on one EncodedFrame payload, naive (options=None) or fast.

    ``restorer`` / ``segmenter`` are the plain Restorer / Segmenter; with options they are wrapped by
    FastRestorer / FastSegmenter (or pass a FastRestorer and a FastSegmenter, already built, to share
    them). ``timed=True`` synchronizes the device between stages for per-stage
    times (costs a little on GPU)."""

    def __init__(self, restorer, segmenter, options: FastOptions | None = None,
                 small_region_area: float | None = None, tail_threshold: float | None = None,
                 tail_downsample: int | None = None, timed: bool = True):
        from . import tail as tail_mod
        prebuilt = isinstance(restorer, FastRestorer) and isinstance(segmenter, FastSegmenter)
        self.naive = options is None and not prebuilt
        if prebuilt:  # already optimized (reused across chains: no second trace)
            self.restorer, self.segmenter = restorer, segmenter
            self.options = segmenter.options
        else:
            self.options = None if self.naive else options
            self.restorer = restorer if self.naive else FastRestorer(restorer, options)
            self.segmenter = segmenter if self.naive else FastSegmenter(segmenter, options)
        self.device = torch.device(segmenter.device)
        self._analyze = tail_mod.analyze
        self.tail_kwargs = {
            'small_region_area': tail_mod.DEFAULT_SMALL_REGION_AREA if small_region_area is None
            else small_region_area,
            'tail_threshold': tail_mod.DEFAULT_TAIL_THRESHOLD if tail_threshold is None else tail_threshold,
            'downsample': tail_mod.DEFAULT_DOWNSAMPLE if tail_downsample is None else tail_downsample}
        self.timed = timed

    def _sync(self):
        if self.timed and self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def __call__(self, jpeg, scale: int, source_size: tuple[int, int]) -> ChainResult:
        from runespoor_edge.codec import decode_jpeg
        W, H = int(source_size[0]), int(source_size[1])
        t0 = time.perf_counter()
        if self.naive:
            lr = decode_jpeg(jpeg)
            t1 = time.perf_counter()
            rgb = self.restorer.restore(lr, scale, (W, H))
            t2 = time.perf_counter()
            labels = self.segmenter.predict(rgb)
            t3 = time.perf_counter()
        else:
            lr = decode_rgb(jpeg)
            t1 = time.perf_counter()
            with _grad_ctx(self.segmenter.options):
                x255 = self.restorer.restore255(lr, scale, (H, W))
                self._sync()
                t2 = time.perf_counter()
                labels = self.segmenter.labels255(x255)[0].cpu().numpy()
            t3 = time.perf_counter()
        tail = self._analyze(labels, **self.tail_kwargs)
        t4 = time.perf_counter()
        ms = lambda a, b: (b - a) * 1000.0  # noqa: E731
        return ChainResult(labels, tail, {'decode': ms(t0, t1), 'restore': ms(t1, t2), 'segment': ms(t2, t3),
                                          'tail': ms(t3, t4), 'total': ms(t0, t4)})


def compare_outputs(naive: ChainResult, fast: ChainResult) -> dict:
    """Label agreement and tail-verdict agreement of two chain results of the same frame."""
    agree = float((naive.labels == fast.labels).mean())
    return {'label_agreement': agree, 'same_tail_verdict': bool(naive.tail.is_tail == fast.tail.is_tail),
            'small_region_ratio_diff': abs(float(naive.tail.small_region_ratio) -
                                           float(fast.tail.small_region_ratio))}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float('inf') if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


__all__ = ['FastOptions', 'NAIVE', 'EXACT', 'OPTIMIZED', 'COMPILED', 'ABLATION', 'TOLERANCE', 'FastPathError',
           'fold_conv_bn', 'fold_espnet_bn', 'fold_bn_generic', 'ModelRunner', 'FastSegmenter', 'FastRestorer',
           'optimize_segmenter', 'optimize_restorer', 'CloudChain', 'ChainResult', 'decode_rgb',
           'compare_outputs', 'psnr', 'configure_threads', 'cpu_has_native_bf16', 'available_cores', 'free_cores']

"""What the nodes that serve a model (restorer, segmentation) share: their serving parameters, the
inference options those parameters select, and the warm-up size rule. A library module, so that neither
node imports the other."""
from __future__ import annotations

from runespoor_cloud.inference import OPTIMIZED, PLAIN, InferenceOptions
from runespoor_common.datasets import get_info
from runespoor_common.params import Param, in_range, one_of, parse_size, size_check

#: device, threads, optimized, warmup_size: declared by both model-serving nodes after their own parameters.
SERVING_PARAMS = [
    Param('device', 'cpu', 'torch device', one_of('cpu', 'cuda'), read_only=True),
    Param('threads', 0, 'torch and OpenCV CPU threads; 0 = torch default', in_range(0, 256), read_only=True),
    Param('optimized', True, 'fast inference (runespoor_cloud/inference.py OPTIMIZED): folded BN, channels-last, '
          'frozen graph, bf16 SR on CPUs with native bf16 (fp16 on CUDA), straight-to-RGB JPEG decode; same '
          'outputs within inference.TOLERANCE; false = the plain eager fp32 reference path', read_only=True),
    Param('warmup_size', 'native', "frame size WIDTHxHEIGHT to run every model once at start-up (the first "
          "frame of each model otherwise costs seconds: graph tracing); 'native' = the data set's size "
          "(CamVid 480x360, Cityscapes 1024x512), 'none' = no warm-up", size_check, read_only=True),
]


def inference_options(optimized: bool) -> InferenceOptions:
    """The options of the `optimized` parameter: OPTIMIZED, or PLAIN (the reference path)."""
    return OPTIMIZED if optimized else PLAIN


def warmup_size(value: str, dataset: str) -> tuple[int, int] | None:
    """The warm-up frame size of a `warmup_size` parameter value ('native' = the data set's size)."""
    return parse_size(value, 'warmup_size', native=get_info(dataset).native_size)

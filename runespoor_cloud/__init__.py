"""Runespoor cloud side (online library and nodes): decode -> restore (bilinear/SR/ASR/CloudSeg) -> segment ->
tail detection as one chain, the CAC controller, the model registry and the losses. The offline jobs that
use it (train, eval, profile, bench) live in runespoor_tools."""

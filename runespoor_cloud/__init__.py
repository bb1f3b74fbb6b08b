"""Runespoor cloud side: restoration (bilinear/SR/ASR/CloudSeg), segmentation, tail detection, the CAC
controller, training, evaluation and profiling."""

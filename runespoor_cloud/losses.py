"""Training losses as modules (BasicSR style): L1 reconstruction, the ASR analytics-aware loss (journal Eq. 3)
and the CloudSeg baseline (Eq. 2).

- ASR:      alpha * L1(sr, hr) + beta * CE(seg(sr)[detailed], label[detailed])
- CloudSeg: alpha * L1(sr, hr) + beta * KL(softmax(seg(hr)) || softmax(seg(sr)))  over the whole frame,
            or CE to argmax(seg(hr)); no labels.
The segmentation model is frozen (eval, requires_grad False); gradients flow through it into the SR net.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DetailedRegionCE(nn.Module):
    """Cross-entropy averaged over pixels that are in `mask` (detailed regions) and not `ignore`.
    Returns an exact 0 that still carries the graph when no pixel qualifies."""

    def __init__(self, ignore_index: int = 255):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        target = labels.long().clone()
        keep = target != self.ignore_index
        if mask is not None:
            keep &= mask.bool()
        # labels beyond the model's classes must not reach cross_entropy
        keep &= target < logits.shape[1]
        if not bool(keep.any()):
            return logits.sum() * 0.0
        target[~keep] = self.ignore_index
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction='sum') / keep.sum()


class ASRLoss(nn.Module):
    """Eq. 3: alpha * L1(sr, hr) + beta * CE over detailed regions of seg(sr) against the label map."""

    def __init__(self, segmenter, alpha: float = 0.95, beta: float = 0.05, ignore_index: int = 255):
        super().__init__()
        self.segmenter = segmenter
        self.alpha, self.beta = float(alpha), float(beta)
        self.ce = DetailedRegionCE(ignore_index)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor):
        rec = F.l1_loss(sr, hr)
        logits = self.segmenter.forward_rgb01(sr)
        ana = self.ce(logits, labels, mask)
        return self.alpha * rec + self.beta * ana, {'l1': rec.detach().item(), 'ce': ana.detach().item()}


class CloudSegLoss(nn.Module):
    """Eq. 2: alpha * L1(sr, hr) + beta * divergence between seg(sr) and seg(hr) over the whole frame."""

    def __init__(self, segmenter, alpha: float = 0.95, beta: float = 0.05, kind: str = 'kl'):
        super().__init__()
        if kind not in ('kl', 'ce'):
            raise ValueError(f"kind must be 'kl' or 'ce', not {kind!r}")
        self.segmenter = segmenter
        self.alpha, self.beta, self.kind = float(alpha), float(beta), kind

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, labels=None, mask=None):
        rec = F.l1_loss(sr, hr)
        with torch.no_grad():
            t = self.segmenter.forward_rgb01(hr)
        s = self.segmenter.forward_rgb01(sr)
        if self.kind == 'kl':
            ana = F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True,
                           reduction='none').sum(1).mean()
        else:
            ana = F.cross_entropy(s, t.argmax(1))
        return self.alpha * rec + self.beta * ana, {'l1': rec.detach().item(), self.kind: ana.detach().item()}


class L1Loss(nn.Module):
    def forward(self, sr, hr, labels=None, mask=None):
        rec = F.l1_loss(sr, hr)
        return rec, {'l1': rec.detach().item()}

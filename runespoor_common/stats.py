"""Summary statistics of repeated measurements (latencies, reaction times), defined once for the bench and
the demo: count, median, 95th percentile (NumPy's linear interpolation), minimum and mean."""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np


def summarize(values: Iterable[float], scale: float = 1.0, unit: str = '', digits: Optional[int] = None) -> dict:
    """``{'n', 'median', 'p95', 'min', 'mean'}`` of ``values * scale``; with `unit` the figures are keyed
    ``median_<unit>`` and so on; `digits` rounds them. Figures are None when there are no values."""
    a = np.asarray(list(values), dtype=np.float64) * scale
    sfx = f'_{unit}' if unit else ''
    if a.size == 0:
        return {'n': 0, **{k + sfx: None for k in ('median', 'p95', 'min', 'mean')}}
    figures = {'median': np.median(a), 'p95': np.percentile(a, 95), 'min': a.min(), 'mean': a.mean()}
    return {'n': int(a.size),
            **{k + sfx: float(v) if digits is None else round(float(v), digits) for k, v in figures.items()}}

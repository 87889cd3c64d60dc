"""Bootstrap intervals: how far a figure could move on another draw of questions of the same kind."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def bootstrap_ci(
    items: Sequence[T], figures: Callable[[list[T]], Mapping[str, float]], rounds: int = 1000, seed: int = 7
) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals of each figure, resampling `items` (the questions) with
    replacement: how far a figure could move on another draw of questions of the same kind."""
    if not items:
        return {}
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    pool = list(items)
    for _ in range(rounds):
        for name, value in figures(rng.choices(pool, k=len(pool))).items():
            samples.setdefault(name, []).append(value)
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = [round(values[int(0.025 * (len(values) - 1))], 4), round(values[int(0.975 * (len(values) - 1))], 4)]
    return out

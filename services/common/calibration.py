"""Does a world model's confidence mean something? Confidence bins against accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BINS = (0.0, 0.5, 0.75, 0.9, 1.0)  # 0.75 is the watchdog's default minimum mean confidence


def calibration_table(confidences: Sequence[float], right: Sequence[bool | float]) -> list[dict[str, Any]]:
    """Per confidence bin: how many answers fall in it and the share of them that is right."""
    rows = []
    for lo, hi in zip(BINS, BINS[1:], strict=False):
        hits = [float(r) for c, r in zip(confidences, right, strict=True) if lo <= c < hi or (hi == 1.0 and c >= 1.0)]
        rows.append({"confidence": f"{lo:.2f}-{hi:.2f}", "count": len(hits),
                     "accuracy": round(sum(hits) / len(hits), 4) if hits else None})
    return rows


def below(confidences: Sequence[float], threshold: float = 0.75) -> dict[str, Any]:
    """How sure a model is where it should not be: mean confidence and the share below ``threshold``."""
    return {"count": len(confidences), "mean_confidence": round(sum(confidences) / len(confidences), 4),
            f"share_below_{threshold}": round(sum(c < threshold for c in confidences) / len(confidences), 4)}

"""The evaluation gate: may a new version take canary traffic?

Scores come from the same held-out split for the new and the production version. The
policy (settings ``gate_*``):

* **no worse**: on the held-out split the new version may not be worse than production by
  more than ``tolerance`` (for style, whose metric is a loss, relative to production's
  loss). The comparison is paired per row and allows for sampling noise: it refuses when
  mean(new - production) + z * stderr < -tolerance, so one lucky answer of a random model
  on a two-row split does not block a genuine fine-tune, while on a real held-out set
  (hundreds of rows) the stderr term is small and the rule is the plain one;
* **improvement** (optional): new >= production + min_improvement;
* **fits its data**: the new version reproduces at least ``min_train_fit`` of its training
  answers (VQA accuracy, QA F1). Contradictory data, such as a dataset whose answers were
  shuffled, cannot be fitted, so a poisoned job is refused even when production is weak
  on the held-out split too. For style the trained network must have lowered its
  training loss below the starting network's;
* **keeps its world**: for a model trained on a synthetic world (docs/world.md) both
  versions are also scored on a fixed held-out world set; the new version may lose at
  most ``world_tolerance`` of production's world score (no catastrophic forgetting);
* **slices**: and at most ``slice_max_drop`` on any slice of that set (an expected answer,
  a question kind) with enough items, beyond sampling noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from services.common.tasks import get_task


@dataclass(frozen=True)
class GatePolicy:
    tolerance: float = 0.02
    min_improvement: float | None = None
    min_train_fit: float = 0.6
    z: float = 1.645
    world_tolerance: float = 0.05  # issue 14: the original world may drop at most 5 points
    slice_max_drop: float = 0.10  # issue 24: no slice with enough items may lose more than 10 points
    slice_min_items: int = 10


@dataclass
class GateDecision:
    passed: bool
    reason: str
    metric: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(task: str, new: dict[str, Any], production: dict[str, Any] | None, policy: GatePolicy) -> GateDecision:
    """``new``/``production``: {"heldout": {...}, "train": {...}} score dicts (production: held-out only)."""
    spec = get_task(task)
    metric, direction = spec.metric
    checks: list[dict[str, Any]] = []
    new_held = float(new["heldout"][metric])
    if production is not None:
        prod_held = float(production["heldout"][metric])
        diffs = paired_diffs(task, new["heldout"], production["heldout"])
        mean_diff, stderr = mean_and_stderr(diffs)
        unit = "" if direction == "higher" else " (relative)"
        checks.append(_check(
            "no_worse", mean_diff + policy.z * stderr >= -policy.tolerance,
            f"held-out {metric} {new_held:.4f} vs production {prod_held:.4f}: paired difference "
            f"{mean_diff:+.4f}{unit} +/- {stderr:.4f} over {len(diffs)} rows (tolerance {policy.tolerance}, z {policy.z})"))
        if policy.min_improvement is not None:
            checks.append(_check("improvement", mean_diff >= policy.min_improvement,
                                 f"held-out {metric} must beat production by {policy.min_improvement}{unit}: "
                                 f"difference {mean_diff:+.4f}"))
    new_world, prod_world = new["heldout"].get("world"), (production or {}).get("heldout", {}).get("world")
    if new_world is not None and prod_world is not None:
        nw, pw = float(new_world[metric]), float(prod_world[metric])
        checks.append(_check("keeps_world", nw >= pw - policy.world_tolerance,
                             f"world {metric} {nw:.4f} vs production {pw:.4f} over {new_world['count']} held-out "
                             f"world items (tolerance {policy.world_tolerance})"))
    slices = slice_check(metric, direction, new["heldout"], (production or {}).get("heldout"), policy)
    if slices is not None:
        checks.append(slices)
    if spec.fits_by_loss:
        start, end = float(new["train"]["initial_loss"]), float(new["train"]["final_loss"])
        checks.append(_check("fits_data", end < start,
                             f"training loss {end:.4f} must fall below the starting network's {start:.4f}"))
    else:
        fit = float(new["train"][metric])
        checks.append(_check("fits_data", fit >= policy.min_train_fit,
                             f"training {metric} {fit:.4f} vs minimum {policy.min_train_fit} "
                             "(contradictory or shuffled answers cannot be fitted)"))
    failed = [c for c in checks if not c["passed"]]
    if failed:
        reason = "gate refused: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
    else:
        reason = "gate passed: " + "; ".join(c["detail"] for c in checks)
    return GateDecision(passed=not failed, reason=reason, metric=metric, checks=checks)


def slice_check(metric: str, direction: str, new: dict[str, Any], production: dict[str, Any] | None,
                policy: GatePolicy) -> dict[str, Any] | None:
    """Per slice of the held-out world set: the new version may lose at most ``slice_max_drop`` on
    any slice with ``slice_min_items`` items or more, beyond sampling noise (z standard errors of
    the difference of two proportions, as ``no_worse`` allows on the held-out split). A consistent
    lie that passes quorum and costs the whole world only a few points still empties the slice it
    lies about (1.00 -> 0.00 has no noise to hide in); an honest fine-tune that costs one answer
    in fourteen on a small slice is not refused for it."""
    new_slices = (new.get("world") or {}).get("slices")
    prod_slices = ((production or {}).get("world") or {}).get("slices")
    if not new_slices or not prod_slices:
        return None
    sign = 1.0 if direction == "higher" else -1.0
    table, worst = [], []
    for name in sorted(set(new_slices) & set(prod_slices)):
        n, p = new_slices[name], prod_slices[name]
        if min(int(n["count"]), int(p["count"])) < policy.slice_min_items:
            continue
        drop = sign * (float(p["score"]) - float(n["score"]))
        noise = policy.z * slice_stderr(float(n["score"]), int(n["count"]), float(p["score"]), int(p["count"]))
        row = {"slice": name, "new": n["score"], "production": p["score"], "count": n["count"],
               "noise": round(noise, 4), "passed": drop - noise <= policy.slice_max_drop + 1e-9}
        table.append(row)
        if not row["passed"]:
            worst.append((drop, row))
    if not table:
        return None
    worst.sort(key=lambda d: -d[0])
    if worst:
        detail = "; ".join(f"slice {r['slice']}: {metric} {float(r['new']):.2f} vs production {float(r['production']):.2f} "
                           f"({r['count']} items)" for _, r in worst[:3])
        detail += (f" (a slice may lose at most {policy.slice_max_drop:.2f} beyond {policy.z} standard errors; "
                   f"{len(worst)} of {len(table)} slices lost more)")
    else:
        detail = (f"no slice lost more than {policy.slice_max_drop:.2f} {metric} ({len(table)} slices of "
                  f">= {policy.slice_min_items} world items)")
    out = _check("slices", not worst, detail)
    out["slices"] = table
    return out


def slice_stderr(new: float, new_count: int, production: float, production_count: int) -> float:
    """Standard error of the difference of two accuracies (scores in [0, 1]; 0 outside)."""
    if not (0.0 <= new <= 1.0 and 0.0 <= production <= 1.0) or min(new_count, production_count) < 1:
        return 0.0
    return (new * (1 - new) / new_count + production * (1 - production) / production_count) ** 0.5


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def paired_diffs(task: str, new: dict[str, Any], production: dict[str, Any]) -> list[float]:
    """Per held-out row, how much better the new version is (losses: relative to production's mean)."""
    metric, direction = get_task(task).metric
    new_rows, prod_rows = new["rows"][metric], production["rows"][metric]
    if direction == "higher":
        return [float(n) - float(p) for n, p in zip(new_rows, prod_rows, strict=True)]
    scale = max(abs(float(production[metric])), 1e-12)
    return [(float(p) - float(n)) / scale for n, p in zip(new_rows, prod_rows, strict=True)]


def mean_and_stderr(diffs: list[float]) -> tuple[float, float]:
    """Mean and its standard error; one row is no evidence (stderr 1, the full range of a score)."""
    n = len(diffs)
    if n == 0:
        return 0.0, 0.0
    mean = sum(diffs) / n
    if n == 1:
        return mean, 1.0
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, (var / n) ** 0.5

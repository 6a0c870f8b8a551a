"""CPU kind detection and the bf16 auto decision (services/common/torch_shared.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import TorchSettings
from services.common.torch_shared import answer_agreement, choose_bf16, parse_cpuinfo

pytestmark = pytest.mark.unit

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 fma
processor\t: 1
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu
"""
XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
OLD = """processor\t: 0
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
flags\t\t: fpu sse2 avx2 fma
"""


def test_cpuinfo_parsing_names_the_machine_kind_and_flags() -> None:
    epyc, xeon, old = parse_cpuinfo(EPYC), parse_cpuinfo(XEON), parse_cpuinfo(OLD)
    assert epyc.kind == "AMD EPYC AVX512_BF16" and epyc.native_bf16 and not epyc.amx and epyc.vnni
    assert xeon.kind == "Intel Xeon AMX" and xeon.amx and xeon.native_bf16 and xeon.vnni
    assert not old.native_bf16 and not old.vnni and old.kind.endswith("no native bf16")
    assert epyc.summary()["cpu"] == "AMD EPYC 9R14 96-Core Processor"
    assert parse_cpuinfo("").kind == "unknown CPU no native bf16"


def test_auto_is_bf16_only_with_native_bf16_and_agreeing_answers() -> None:
    assert choose_bf16("auto", True, lambda: 1.0).bf16
    assert choose_bf16("auto", True, lambda: 0.995).bf16
    low = choose_bf16("auto", True, lambda: 0.98)
    assert not low.bf16 and "2.0%" in low.reason and low.agreement == 0.98
    never_asked = choose_bf16("auto", False, lambda: pytest.fail("no check on a CPU without native bf16"))
    assert not never_asked.bf16 and "no native bf16" in never_asked.reason
    assert not choose_bf16("off", True, lambda: 1.0).bf16
    assert choose_bf16("on", True).bf16 and not choose_bf16("on", False).bf16


def test_bf16_setting_is_auto_by_default_and_takes_booleans() -> None:
    assert TorchSettings().bf16 == "auto"
    assert TorchSettings(bf16="true").bf16 == "on" and TorchSettings(bf16=False).bf16 == "off"
    with pytest.raises(ValueError):
        TorchSettings(bf16="sometimes")


def test_answer_agreement_counts_changed_answers() -> None:
    ref = [{"answer": a} for a in "abcd"]
    assert answer_agreement(ref, [{"answer": a} for a in "abcx"]) == 0.75
    assert answer_agreement([], []) == 1.0


def test_torch_threads_sets_and_restores_the_callers_count() -> None:
    import torch

    from services.common.torch_shared import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before  # restored after an error too
    with torch_threads(None):
        assert torch.get_num_threads() == before  # None keeps the caller's


def test_sequential_agreement_allows_one_percent_and_stops_early_beyond() -> None:
    from services.common.torch_shared import sequential_agreement

    items = list(range(200))
    calls: list[int] = []

    def reference(batch: list[int]) -> list[dict]:
        calls.append(len(batch))
        return [{"answer": "same"} for _ in batch]

    def changing(indices: set[int]):  # noqa: ANN202
        return lambda batch: [{"answer": "other" if i in indices else "same"} for i in batch]

    assert sequential_agreement(items, 8, reference, changing({5, 150})) == 0.99  # 2 of 200: within the guard
    assert sum(calls) == 200
    calls.clear()
    share = sequential_agreement(items, 8, reference, changing({0, 1, 2, 199}))
    assert calls == [8] and share == 1 - 3 / 8  # refused after the first batch, not after 200 inputs
    assert sequential_agreement(items, 8, reference, changing({5, 50, 150})) < 0.99
    assert sequential_agreement([], 8, reference, changing(set())) == 1.0


def test_remembered_bf16_checks_a_version_once_and_only_under_auto() -> None:
    """A rollback to a version this process already checked reuses the decision; a version whose
    files differ (another manifest) is checked on its own; on/off/no-check decisions are not stored."""
    from services.common import torch_shared
    from services.common.torch_shared import remembered_bf16, version_key

    calls: list[str] = []

    def check(share: float, name: str):  # noqa: ANN202
        return lambda: calls.append(name) or share

    v1 = (*version_key(Path("/reg/qa/1"), {"files": {"model.safetensors": "aa"}}), "torch", 200)
    v1_other_files = (*version_key(Path("/reg/qa/1"), {"files": {"model.safetensors": "bb"}}), "torch", 200)
    assert v1 != v1_other_files
    try:
        first = remembered_bf16(v1, "auto", True, check(0.97, "v1"))
        again = remembered_bf16(v1, "auto", True, check(1.0, "v1 again"))
        assert calls == ["v1"] and not first.bf16 and not again.bf16
        assert again.agreement == 0.97 and "remembered" in again.reason and "changed 3.0%" in again.reason
        assert remembered_bf16(v1_other_files, "auto", True, check(1.0, "other files")).bf16
        assert calls == ["v1", "other files"]
        # no check ran: nothing stored, nothing reused
        assert remembered_bf16(v1, "on", True, check(0.5, "on")).bf16
        assert not remembered_bf16(v1, "off", True, check(0.5, "off")).bf16
        assert not remembered_bf16(None, "auto", False, check(1.0, "no native")).bf16
        unkeyed = [remembered_bf16(None, "auto", True, check(1.0, f"unkeyed {i}")) for i in range(2)]
        assert calls == ["v1", "other files", "unkeyed 0", "unkeyed 1"] and all(c.bf16 for c in unkeyed)
    finally:
        torch_shared._decisions.pop(v1, None)
        torch_shared._decisions.pop(v1_other_files, None)

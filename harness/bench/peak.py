"""The physical limit: measured matmul GFLOP/s, and what each model costs per request.

Peak = the best of a few timed square matmuls (fp32 and bf16) at the services' thread
count. FLOPs per request come from ``torch.utils.flop_counter.FlopCounterMode`` for the
torch models (matmuls and convolutions, which is where the time goes) and from an
explicit per-layer count for the Keras TransformerNet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(threads: int, sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5) -> dict[str, float]:
    """Best measured GFLOP/s of square matmuls, fp32 and bf16, at ``threads`` intra-op threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out: dict[str, float] = {}
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            best = 0.0
            for n in sizes:
                a = torch.randn(n, n).to(dtype)
                b = torch.randn(n, n).to(dtype)
                seconds = best_seconds(lambda a=a, b=b: torch.mm(a, b), repeats)
                best = max(best, 2 * n**3 / seconds / 1e9)
            out[f"{name}_gflops"] = round(best, 1)
        return out
    finally:
        torch.set_num_threads(previous)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything ``fn`` runs (torch ops FlopCounterMode knows: matmul, conv, attention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash_attention(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(sdpa_flop_count(query, key, value))

    # torch counts the CUDA attention kernels but not the CPU one that scaled_dot_product_attention
    # runs here (BLIP's vision attention, DistilBERT's): without this, attention counts as 0 FLOPs
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash_attention}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return int(counter.get_total_flops())


def keras_conv_flops(model: Any, height: int, width: int) -> int:
    """2 * MACs of every Conv2D for one ``height`` x ``width`` image (norms and adds are ~1%)."""
    import keras

    total = 0
    h, w = height, width
    for layer in model.layers:
        if isinstance(layer, keras.layers.UpSampling2D):
            h, w = h * layer.size[0], w * layer.size[1]
        if isinstance(layer, keras.layers.Conv2D):
            sh, sw = layer.strides
            h, w = -(-h // sh), -(-w // sw)
            kh, kw = layer.kernel_size
            cin = int(layer.kernel.shape[2])
            total += 2 * h * w * kh * kw * cin * layer.filters
    return total

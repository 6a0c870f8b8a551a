"""torch helpers for runtimes: shared base weights under LoRA adapters, threads, autocast.

Production (a full version) and a canary that is a LoRA adapter on it share one copy of
the base weights: the adapter is injected into the shared model by peft and switched on
per batch; full-version batches run with adapters disabled. Batches run on the service's
single model thread, so switching is never concurrent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_shared: dict[str, SharedModel] = {}


class SharedModel:
    def __init__(self, key: str, model: Any, extra: Any) -> None:
        self.key = key
        self.model = model
        self.extra = extra  # processor / tokenizer
        self.peft: Any = None
        self.adapters: set[str] = set()
        self.refs = 0

    def add_adapter(self, name: str, path: Path) -> None:
        from peft import PeftModel

        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name, is_trainable=False)
        else:
            self.peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        self.peft.eval()
        self.adapters.add(name)

    def remove_adapter(self, name: str) -> None:
        if self.peft is None or name not in self.adapters:
            return
        self.adapters.discard(name)
        if self.adapters:
            self.peft.delete_adapter(name)
        else:
            self.model = self.peft.unload()  # drop the LoRA layers, keep the base weights
            self.peft = None

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[Any]:
        """The model object with ``adapter`` active (or none), for one batch."""
        if self.peft is None:
            yield self.model
        elif adapter is None:
            with self.peft.disable_adapter():
                yield self.model
        else:
            self.peft.set_adapter(adapter)
            yield self.model


def acquire(base_dir: Path, loader: Callable[[Path], tuple[Any, Any]]) -> SharedModel:
    key = str(Path(base_dir).resolve())
    with _lock:
        shared = _shared.get(key)
        if shared is None:
            model, extra = loader(Path(base_dir))
            shared = _shared[key] = SharedModel(key, model, extra)
        shared.refs += 1
        return shared


def release(shared: SharedModel, adapter: str | None) -> None:
    with _lock:
        if adapter:
            shared.remove_adapter(adapter)
        shared.refs -= 1
        if shared.refs <= 0:
            _shared.pop(shared.key, None)


def set_threads(num_threads: int) -> None:
    import torch

    torch.set_num_threads(num_threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)


def bf16_supported() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations quantized per batch)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.ao.quantization is deprecated upstream but still the CPU path
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)


def inference_context(bf16: bool) -> contextlib.AbstractContextManager[Any]:
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if bf16 and bf16_supported():
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    return stack


class TorchRuntimeMixin:
    """What every torch runtime shares: threads, full versions or LoRA adapters over a shared
    base, opt-in int8, and the inference context (``inference_mode`` + optional bf16)."""

    shared: SharedModel | None = None
    adapter: str | None = None
    settings: Any

    @staticmethod
    def configure_threads(settings: Any) -> None:
        set_threads(settings.num_threads)

    def inference(self) -> contextlib.AbstractContextManager[Any]:
        return inference_context(self.settings.bf16 and self.settings.quantize == "none")

    def _load_shared(self, version_dir: Path, manifest: dict[str, Any],
                     loader: Callable[[Path], tuple[Any, Any]]) -> SharedModel:
        quantize = self.settings.quantize == "int8"

        def load(path: Path) -> tuple[Any, Any]:
            model, extra = loader(path)
            return (quantize_int8(model) if quantize else model), extra

        if manifest.get("kind") == "lora-adapter":
            if quantize:
                raise ValueError("a LoRA adapter version cannot be served with quantize=int8 (peft needs float Linear layers)")
            from .runtime import ModelRuntime

            self.shared = acquire(ModelRuntime.base_dir(version_dir, manifest), load)
            self.adapter = f"{manifest['model']}-v{manifest['version']}"
            with _lock:
                self.shared.add_adapter(self.adapter, Path(version_dir))
        else:
            self.shared = acquire(Path(version_dir), load)
        return self.shared

    def unload(self) -> None:
        if self.shared is not None:
            release(self.shared, self.adapter)
            self.shared = None

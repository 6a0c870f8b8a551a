"""torch helpers for runtimes: shared base weights under LoRA adapters, threads, autocast.

Production (a full version) and a canary that is a LoRA adapter on it share one copy of
the base weights: the adapter is injected into the shared model by peft and switched on
per batch; full-version batches run with adapters disabled. Batches run on the service's
single model thread, so switching is never concurrent.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("loopline.precision")
OPENVINO_CACHE = ".openvino-cache"  # in the registry's root: the registry lists only model directories


@functools.cache
def _code_digest(runtime_cls: type) -> str:
    """sha256 of the sources that build and convert a runtime's networks: its module, this one and
    the OpenVINO backend's (any change to them makes earlier conversions stale)."""
    import inspect
    import sys

    from . import openvino_backend

    digest = hashlib.sha256()
    for module in (sys.modules[runtime_cls.__module__], sys.modules[__name__], openvino_backend):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


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
        self.precision: PrecisionChoice | None = None  # decided by the first runtime that loads it

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


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block on ``num_threads`` torch intra-op threads and restore the caller's count
    afterwards; None (or 0) keeps the caller's."""
    import torch

    before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_threads(num_threads: int) -> None:
    import torch

    torch.set_num_threads(num_threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)


@dataclass(frozen=True)
class CpuKind:
    """What the CPU can do natively for the speed options (from ``/proc/cpuinfo``)."""

    model: str
    flags: frozenset[str]

    @property
    def amx(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls in hardware (AVX512_BF16 dot products or AMX tiles); without them bf16 is emulated
        and slower than fp32."""
        return self.amx or self.avx512_bf16

    @property
    def kind(self) -> str:
        """The machine kind the performance tables are kept per (docs/performance.md)."""
        vendor = ("Intel Xeon" if "xeon" in self.model.lower() else "AMD EPYC" if "epyc" in self.model.lower()
                  else self.model or "unknown CPU")
        return f"{vendor} {'AMX' if self.amx else 'AVX512_BF16' if self.avx512_bf16 else 'no native bf16'}"

    def summary(self) -> dict[str, Any]:
        return {"cpu": self.model, "kind": self.kind, "amx": self.amx, "avx512_bf16": self.avx512_bf16,
                "vnni": self.vnni, "native_bf16": self.native_bf16}


def parse_cpuinfo(text: str) -> CpuKind:
    """The first processor's model name and flags from ``/proc/cpuinfo`` text."""
    model, flags = "", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = value
    return CpuKind(model, frozenset(flags.split()))


@functools.cache
def cpu_kind() -> CpuKind:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            return parse_cpuinfo(fh.read())
    except OSError:  # not Linux: assume nothing native
        import platform

        return CpuKind(platform.processor(), frozenset())


def bf16_supported() -> bool:
    return cpu_kind().native_bf16


AGREEMENT_FLOOR = 0.99  # a speed option that changes more than 1 % of answers is not on by default


@dataclass(frozen=True)
class PrecisionChoice:
    bf16: bool
    reason: str
    agreement: float | None = None


def choose_bf16(mode: str, native: bool, agreement: Callable[[], float] | None = None) -> PrecisionChoice:
    """bf16 or fp32 for ``mode`` (auto | on | off): ``auto`` is bf16 when the CPU has native bf16 and
    ``agreement()`` (the share of answers bf16 leaves unchanged on generated inputs) is >= 99 %."""
    if mode == "off":
        return PrecisionChoice(False, "bf16 off by setting")
    if not native:
        return PrecisionChoice(False, "fp32: this CPU has no native bf16 (AVX512_BF16 or AMX), where bf16 is slower")
    if mode == "on":
        return PrecisionChoice(True, "bf16 on by setting (no agreement check)")
    if agreement is None:
        return PrecisionChoice(True, "bf16: native bf16, no agreement check available")
    share = agreement()
    if share >= AGREEMENT_FLOOR:
        return PrecisionChoice(True, f"bf16: native bf16 and {share:.1%} of generated answers match fp32", share)
    return PrecisionChoice(False, f"fp32: bf16 changed {1 - share:.1%} of generated answers (more than "
                                  f"{1 - AGREEMENT_FLOOR:.0%})", share)


_decisions: dict[tuple[Any, ...], PrecisionChoice] = {}


def version_key(version_dir: Path, manifest: dict[str, Any]) -> tuple[str, str]:
    """What identifies a registry version's weights in this process: its directory and the
    sha256 of each file its manifest lists (a version never changes once written)."""
    import json

    return str(Path(version_dir).resolve()), json.dumps(manifest.get("files", {}), sort_keys=True)


def remembered_bf16(key: tuple[Any, ...] | None, mode: str, native: bool,
                    agreement: Callable[[], float] | None) -> PrecisionChoice:
    """``choose_bf16``, with the outcome of an agreement check remembered per ``key`` (a version,
    its backend and the check's settings) for the life of the process: loading the same version
    again (a rollback to a version the service served before, a restart of its runtime) reuses
    the decision instead of checking a few hundred inputs again. Nothing is remembered when no
    check ran (``on``, ``off``, no native bf16) or ``key`` is None."""
    checked = mode == "auto" and native and agreement is not None and key is not None
    if checked:
        with _lock:
            known = _decisions.get(key)  # type: ignore[arg-type]
        if known is not None:
            return PrecisionChoice(known.bf16, f"{known.reason} (remembered from this version's check)",
                                   known.agreement)
    choice = choose_bf16(mode, native, agreement)
    if checked:
        with _lock:
            _decisions[key] = choice  # type: ignore[index]
    return choice


def answer_agreement(reference: list[dict[str, Any]], got: list[dict[str, Any]]) -> float:
    """Share of answers (the ``answer`` field) that are the same in both lists."""
    if not reference:
        return 1.0
    return sum(a["answer"] == b["answer"] for a, b in zip(reference, got, strict=True)) / len(reference)


def sequential_agreement(items: list[Any], step: int, reference: Callable[[list[Any]], list[dict[str, Any]]],
                         candidate: Callable[[list[Any]], list[dict[str, Any]]],
                         same: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None) -> float:
    """Share of ``items`` whose answer ``candidate`` leaves as ``reference`` gives it, batch by batch
    (``step`` items each). Stops as soon as more than 1 % of *all* items have changed: the option is
    refused whatever the rest would say, so a clearly failing option costs a batch or two at load,
    not the whole check. The share is over the items seen. ``same`` compares two answers (default:
    equal ``answer`` fields)."""
    same = same or (lambda a, b: a["answer"] == b["answer"])
    allowed = int((1 - AGREEMENT_FLOOR) * len(items) + 1e-9)
    changed = seen = 0
    for lo in range(0, len(items), max(1, step)):
        batch = items[lo:lo + max(1, step)]
        changed += sum(not same(a, b) for a, b in zip(reference(batch), candidate(batch), strict=True))
        seen += len(batch)
        if changed > allowed:
            break
    return 1 - changed / seen if seen else 1.0


def cast_linear_weights_bf16(model: Any) -> int:
    """Store every ``nn.Linear`` weight and bias in bf16, once, and return how many were cast.

    Autocast casts fp32 weights to bf16 on every call (its cache lives for one autocast region,
    i.e. one batch): for a batch of one that re-reads every weight each request, memory traffic
    that is not compute. Pre-cast weights give the same numbers under autocast (the same cast,
    done once). Norms, embeddings and convolutions stay fp32 (autocast runs norms in fp32), and
    so does a Linear whose weight is tied to an embedding (a language-model head).
    """
    import torch

    embedded = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    cast = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in embedded \
                and module.weight.dtype == torch.float32:
            module.weight.data = module.weight.data.to(torch.bfloat16)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(torch.bfloat16)
            cast += 1
    return cast


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
    if bf16:
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    return stack


def log_precision(runtime: str, precision: PrecisionChoice, **extra: Any) -> None:
    """The one log line saying which precision a runtime serves a version in, and why (every task's)."""
    log.info("precision of %s: %s", runtime, precision.reason,
             extra={"bf16": precision.bf16, "agreement": precision.agreement, "cpu": cpu_kind().kind, **extra})


class TorchRuntimeMixin:
    """What every torch runtime shares: threads, full versions or LoRA adapters over a shared
    base, opt-in int8, and the inference context (``inference_mode`` + optional bf16)."""

    shared: SharedModel | None = None
    adapter: str | None = None
    settings: Any
    precision: PrecisionChoice = PrecisionChoice(False, "not loaded")
    version: tuple[str, str] | None = None  # version_key of the loaded version
    weights_identity: list[dict[str, str]] | None = None  # its files' sha256 (and its base's, for an adapter)
    backend: Any = None  # an OpenVINO engine serving this version (``choose_backend``), else None: torch

    @staticmethod
    def configure_threads(settings: Any) -> None:
        set_threads(settings.num_threads)

    def inference(self) -> contextlib.AbstractContextManager[Any]:
        return inference_context(self.precision.bf16)

    def agreement_inputs(self, count: int) -> list[Any]:
        """``count`` prepared in-world inputs for the bf16 agreement check."""
        raise NotImplementedError(f"{type(self).__name__} must generate the inputs of its bf16 agreement check")

    def choose_precision(self) -> PrecisionChoice:
        """At load: bf16 per the ``bf16`` setting, the CPU and (auto) an fp32-vs-bf16 answer check on
        generated inputs, kept on ``self.precision`` with the reason (``choose_backend`` logs it)."""
        if self.settings.quantize != "none":
            self.precision = PrecisionChoice(False, f"{self.settings.quantize} quantized: no autocast")
            return self.precision
        if self.shared is not None and self.shared.precision is not None:
            # a LoRA canary on an already loaded base: the base's weights are already cast (or not)
            self.precision = self.shared.precision
            return self.precision

        def answers(bf16: bool) -> Callable[[list[Any]], list[dict[str, Any]]]:
            def run(batch: list[Any]) -> list[dict[str, Any]]:
                self.precision = PrecisionChoice(bf16, "agreement check")
                return self.predict(batch)
            return run

        self.precision = self.decide_bf16("torch", answers(False), answers(True))
        if self.shared is not None:
            if self.precision.bf16:
                cast_linear_weights_bf16(self.shared.model)
            self.shared.precision = self.precision
        return self.precision

    def decide_bf16(self, backend: str, reference: Callable[[list[Any]], list[dict[str, Any]]],
                    candidate: Callable[[list[Any]], list[dict[str, Any]]]) -> PrecisionChoice:
        """bf16 or not for this version on ``backend``: the ``bf16`` setting, the CPU and, under auto,
        ``candidate``'s answers (bf16) against ``reference``'s (fp32) on generated inputs, stopping
        once more than 1 % changed; remembered per version (``remembered_bf16``)."""
        mode, count = self.settings.bf16, self.settings.bf16_check_inputs

        def agreement() -> float:  # the inputs are generated only when the check runs
            return sequential_agreement(self.agreement_inputs(count), self.settings.max_batch_size, reference, candidate)

        key = (*self.version, backend, count) if self.version else None
        return remembered_bf16(key, mode, cpu_kind().native_bf16, agreement)

    def log_precision(self, **extra: Any) -> None:
        log_precision(type(self).__name__, self.precision, **extra)

    def _load_shared(self, version_dir: Path, manifest: dict[str, Any],
                     loader: Callable[[Path], tuple[Any, Any]]) -> SharedModel:
        quantize = self.settings.quantize == "int8"
        self.version = version_key(version_dir, manifest)

        def load(path: Path) -> tuple[Any, Any]:
            model, extra = loader(path)
            return (quantize_int8(model) if quantize else model), extra

        self.weights_identity = [manifest.get("files", {})]
        if manifest.get("kind") == "lora-adapter":
            if quantize:
                raise ValueError("a LoRA adapter version cannot be served with quantize=int8 (peft needs float Linear layers)")
            from .runtime import ModelRuntime

            base_dir = ModelRuntime.base_dir(version_dir, manifest)
            self.weights_identity.append(ModelRuntime.read_manifest(base_dir).get("files", {}))
            self.shared = acquire(base_dir, load)
            self.adapter = f"{manifest['model']}-v{manifest['version']}"
            with _lock:
                self.shared.add_adapter(self.adapter, Path(version_dir))
        else:
            self.shared = acquire(Path(version_dir), load)
        return self.shared

    def check_backend_setting(self) -> None:
        """Refuse, before loading, a ``backend`` setting this process cannot serve."""
        if self.settings.backend != "openvino":
            return
        from . import openvino_backend

        name = f"LOOPLINE_{self.task.upper()}_BACKEND"  # type: ignore[attr-defined]
        if not openvino_backend.available():
            raise ValueError(f"{name}=openvino needs OpenVINO: pip install 'loopline[openvino]'")
        if self.settings.quantize != "none":
            raise ValueError(f"{name}=openvino cannot be combined with LOOPLINE_{self.task.upper()}_QUANTIZE "  # type: ignore[attr-defined]
                             "(OpenVINO converts the float model)")

    def choose_backend(self, convert: Callable[[], Callable[[bool], Any]]) -> None:
        """After ``_load_shared``: what serves this version, per the ``backend`` setting.

        - ``torch``: torch, bf16 per ``choose_precision``.
        - ``auto``: torch when it serves bf16; otherwise OpenVINO f32 when it is installed (torch
          fp32's answers, faster on the CPUs measured, docs/performance.md); otherwise, or when the
          conversion fails (logged), torch fp32.
        - ``openvino``: OpenVINO, bf16 per the same setting and agreement guard as torch.

        ``convert()`` converts the loaded version (its adapter active) and returns a function
        that compiles it: ``compile(bf16)`` -> an engine with a ``precision`` attribute, kept on
        ``self.backend`` (None while torch serves). A failed load releases the shared model."""
        self.backend = None
        try:
            if self.settings.backend == "openvino":
                self._load_openvino(convert)
            else:
                self.choose_precision()
                if self.settings.backend == "auto" and self.openvino_f32_pays():
                    torch_choice = self.precision
                    try:
                        self._load_openvino(convert, f32_only=True)
                    except Exception as exc:  # auto must never lose a version torch can serve
                        self.backend, self.precision = None, torch_choice
                        log.warning("%s stays on torch fp32: OpenVINO could not convert this version (%s: %s)",
                                    type(self).__name__, type(exc).__name__, str(exc).splitlines()[0][:300]
                                    if str(exc) else "")
        except BaseException:
            self.unload()  # release the shared model this load acquired
            raise
        # one line for what serves the version and why (OpenVINO's reason includes torch's)
        self.log_precision(**({"backend": "openvino"} if self.backend is not None else {}))

    def openvino_cache_entry(self, network: str) -> Path | None:
        """Where ``convert_cached`` keeps this version's conversion of ``network``:
        ``<registry>/.openvino-cache/<digest>``, the digest covering the weights (the sha256 of each
        file of the version, and of its base for a LoRA adapter), the code that builds and converts
        the network and the torch, transformers and OpenVINO versions. None when the
        ``openvino_cache`` setting is off."""
        if not self.settings.openvino_cache or self.version is None:
            return None
        import json

        import openvino
        import torch
        import transformers

        material = {"task": self.task, "network": network,  # type: ignore[attr-defined]
                    "weights": self.weights_identity, "code": _code_digest(type(self)),
                    "versions": [torch.__version__, transformers.__version__, openvino.__version__]}
        digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]
        return Path(self.version[0]).parent.parent / OPENVINO_CACHE / f"{self.task}-{network}-{digest}"  # type: ignore[attr-defined]

    def openvino_f32_pays(self) -> bool:
        """Under ``backend=auto``: torch serves this version in fp32 (bf16 refused by the check or the
        CPU, or off), not int8, and OpenVINO is installed. OpenVINO's f32 gives torch fp32's answers
        (tested) and ran faster than torch fp32 on the AMD EPYC measured (docs/performance.md);
        torch bf16, where it passes the guard, was faster still, so it stays."""
        from . import openvino_backend

        return not self.precision.bf16 and self.settings.quantize == "none" and openvino_backend.available()

    def _load_openvino(self, convert: Callable[[], Callable[[bool], Any]], f32_only: bool = False) -> None:
        """Convert this version to OpenVINO and pick its precision: bf16 (OpenVINO's own bf16 path)
        only when the CPU has native bf16 and, under ``auto``, its answers on generated inputs agree
        with torch fp32's on >= 99 %; otherwise f32, whose answers are torch's. ``f32_only``
        (backend auto, torch already chose fp32): f32 without a bf16 check."""
        assert self.shared is not None
        torch_choice = self.precision
        if self.shared.precision is not None and self.shared.precision.bf16:
            raise ValueError("this base is already served in torch bf16 by another version of this service: "
                             "serve every version of a service with the same backend")
        self.precision = PrecisionChoice(False, "torch fp32: the reference of the OpenVINO backend")
        compile_for = convert()
        compiled: dict[bool, Any] = {}

        def engine(bf16: bool) -> Any:
            if bf16 not in compiled:
                compiled[bf16] = compile_for(bf16)
            return compiled[bf16]

        def on(choose: Callable[[], Any] | None) -> Callable[[list[Any]], list[dict[str, Any]]]:
            def run(batch: list[Any]) -> list[dict[str, Any]]:
                self.backend = choose() if choose else None
                return self.predict(batch)  # type: ignore[attr-defined]
            return run

        if f32_only:
            self.backend = engine(False)
            self.precision = PrecisionChoice(False, f"OpenVINO {self.backend.precision} (torch fp32's answers, "
                                                    f"faster) as torch chose: {torch_choice.reason}",
                                             torch_choice.agreement)
        else:
            choice = self.decide_bf16("openvino", on(None), on(lambda: engine(True)))
            self.backend = engine(choice.bf16)
            self.precision = PrecisionChoice(choice.bf16, f"OpenVINO {self.backend.precision}: {choice.reason}",
                                             choice.agreement)

    def unload(self) -> None:
        self.backend = None
        if self.shared is not None:
            release(self.shared, self.adapter)
            self.shared = None

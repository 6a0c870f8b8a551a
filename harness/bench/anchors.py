"""Anchors: the same VQA, QA and style models in ONNX Runtime and OpenVINO, timed in-process at batch 1 and 8.

What a specialised CPU runtime does with the model, with no HTTP, no batching queue and no
decoding in the timed part (QA windows are tokenized once, as the service would cut them; the
style image is decoded once): the figure the service's throughput at c=8 is held against.

Their accuracy guard, on generated in-world inputs against the service at fp32: for QA the
service's own span search run on their logits, answers compared; for style the output images,
compared as the style bf16 check does (``image_agreement``: mean pixel difference at most 2).

Exports: QA through ``torch.onnx.export`` and ``openvino.convert_model`` of the traced torch
model; style (Keras 3) through ``model.export(format="onnx")`` (tf2onnx) and a TF SavedModel
that ``openvino.convert_model`` reads; VQA as BLIP's three networks (vision encoder, question
encoder, answer decoder: ``services/vqa/runtime.py:blip_parts``) through ``torch.onnx.export`` and
``openvino.convert_model``, decoded by the same greedy loop the VQA service's OpenVINO backend runs
(timed: one whole ``generate``, every decoder step included, from prepared pixels and question).
All optional (``pip install 'loopline[bench]'``, which ``make install`` does); without them the
cells are skipped with the reason in the report.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from .load import percentile
from .workloads import Workload

BATCHES = (1, 8)


def missing(task: str = "qa") -> list[str]:
    """The packages an anchor of ``task`` needs that are not installed."""
    needed = ("onnxruntime", "openvino", "onnx") + (("tf2onnx",) if task == "style" else ())
    return [m for m in needed if importlib.util.find_spec(m) is None]


def _windows(runtime: Any, workload: Workload, batch: int) -> dict[str, Any]:
    body = workload.body
    enc = runtime.tokenizer([body["question"]] * batch, [body["context"]] * batch, truncation="only_second",
                            max_length=runtime.max_len, stride=runtime.stride, return_overflowing_tokens=True,
                            padding="longest", return_tensors="np")
    return {k: enc[k].astype("int64") for k in runtime.encoder_inputs()}


def _time(run: Any, seconds: float, min_runs: int = 3) -> list[float]:
    run()  # warm
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def _agreement(runtime: Any, items: list[Any], reference: list[dict[str, Any]], run: Any) -> float:
    """Share of QA answers unchanged when the runtime's encoder forward is ``run`` (same windows, same
    span search): the QA runtime's own backend hook (``LOOPLINE_QA_BACKEND``)."""
    from services.common.torch_shared import answer_agreement

    runtime.backend = run  # this runtime instance only: predict() now runs on the other backend
    try:
        got = [a for lo in range(0, len(items), 8) for a in runtime.predict(items[lo:lo + 8])]
    finally:
        runtime.backend = None
    return answer_agreement(reference, got)


def qa_anchor_cells(version_dir: Path, settings: Any, workloads: list[Workload], threads: int,
                    seconds: float = 4.0, agreement_inputs: int = 200) -> list[dict[str, Any]]:
    """One cell per (runtime, workload, batch): requests/s, p50 and p95 of a batch call, and the
    share of answers on generated in-world inputs that match the torch fp32 service's."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from services.common import openvino_backend as ovb
    from services.qa.runtime import QaRuntime

    runtime = QaRuntime(settings.model_copy(update={"bf16": "off", "backend": "torch", "warmup": False}), Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    model = runtime.shared.model  # type: ignore[union-attr]
    # the reference answers first: exporting and converting trace the torch model
    items = runtime.agreement_inputs(agreement_inputs)
    torch_answers = [a for lo in range(0, len(items), 8) for a in runtime.predict(items[lo:lo + 8])]

    names = runtime.encoder_inputs()
    wrapper = ovb.outputs_of(model, names, ("start_logits", "end_logits"))
    example = _windows(runtime, workloads[0], 2)
    example_t = tuple(torch.from_numpy(example[n]) for n in names)
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "qa.onnx")
        torch.onnx.export(wrapper, example_t, path, input_names=names,
                          output_names=["start_logits", "end_logits"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names})
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        ov_model = ovb.convert(wrapper, example_t)
        # OpenVINO at its default precision (bf16 where the CPU has it: what a user gets) and at f32
        ov_default = ovb.compile_encoder(ov_model, names, threads, None)
        ov_f32 = ovb.compile_encoder(ov_model, names, threads, False)
        with torch.inference_mode():
            reference = wrapper(*example_t)[0].numpy()

        runners = [
            ("onnxruntime", lambda feed: session.run(None, {n: feed[n] for n in names}), "fp32"),
            ("openvino", ov_default, ov_default.precision),
        ]
        if ov_default.precision != "fp32":
            runners.append(("openvino", ov_f32, ov_f32.precision))
        for variant, run, precision in runners:
            first = run(example)[0]
            max_diff = float(np.abs(np.asarray(first) - reference).max())
            agree = round(_agreement(runtime, items, torch_answers, run), 4)
            for workload in workloads:
                for batch in BATCHES:
                    feed = _windows(runtime, workload, batch)
                    times = _time(lambda feed=feed, run=run: run(feed), seconds)
                    cells.append(_cell("qa", workload, variant, batch, times, precision, agree, len(items),
                                       windows=int(feed["input_ids"].shape[0]),
                                       max_abs_logit_diff_vs_torch=round(max_diff, 5)))
    runtime.unload()
    return cells


def vqa_anchor_cells(version_dir: Path, settings: Any, workloads: list[Workload], threads: int,
                     seconds: float = 4.0, agreement_inputs: int = 200) -> list[dict[str, Any]]:
    """BLIP in ONNX Runtime and OpenVINO: one cell per (runtime, workload, batch), with the share of
    generated shapes-world questions whose answer matches the torch fp32 service's. Agreement is
    counted on the service's own ``predict`` with the runtime as its backend (same preparation,
    same decoding, same answer text)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from services.common.torch_shared import answer_agreement
    from services.vqa.runtime import CompiledBlip, VqaRequest, VqaRuntime, blip_examples, blip_parts, convert_blip

    runtime = VqaRuntime(settings.model_copy(update={"bf16": "off", "backend": "torch", "warmup": False}), Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    assert runtime.shared is not None
    model, tokenizer = runtime.shared.model, runtime.processor.tokenizer
    items = runtime.agreement_inputs(agreement_inputs)

    def answers_of(engine: Any) -> list[dict[str, Any]]:
        runtime.backend = engine  # this runtime instance only: predict() now decodes on ``engine``
        try:
            return [a for lo in range(0, len(items), 8) for a in runtime.predict(items[lo:lo + 8])]
        finally:
            runtime.backend = None

    reference = answers_of(None)
    compile_for = convert_blip(model, tokenizer, runtime.image_side, threads)
    ov_default = compile_for(None)  # OpenVINO's own precision (bf16 where the CPU has it): what a user gets
    engines = [("openvino", ov_default)]
    if ov_default.precision != "fp32":
        engines.append(("openvino", compile_for(False)))
    with tempfile.TemporaryDirectory() as tmp:
        parts = blip_parts(model)
        examples = blip_examples(parts, tokenizer, runtime.image_side)
        dynamic = {"pixel_values": {0: "batch"}, "input_ids": {0: "batch", 1: "tokens"},
                   "attention_mask": {0: "batch", 1: "tokens"}, "image_embeds": {0: "batch"},
                   "cross_kv": {2: "batch", 4: "question_tokens"}, "past": {2: "batch", 4: "answer_tokens"},
                   "logits": {0: "batch"}, "present": {2: "batch", 4: "answer_tokens_1"}}
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        sessions = []
        for i, (part, example, names, outs) in enumerate(zip(parts, examples, CompiledBlip.INPUTS, CompiledBlip.OUTPUTS,
                                                             strict=True)):
            path = str(Path(tmp) / f"blip-{i}.onnx")
            torch.onnx.export(part, example, path, input_names=list(names), output_names=list(outs), opset_version=17,
                              dynamo=False, dynamic_axes={n: dynamic[n] for n in (*names, *outs)})
            sessions.append(ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]))
    engines.insert(0, ("onnxruntime", CompiledBlip([lambda feed, s=s: s.run(None, feed) for s in sessions], "fp32")))

    cells: list[dict[str, Any]] = []
    for variant, engine in engines:
        agree = round(answer_agreement(reference, answers_of(engine)), 4)
        for workload in workloads:
            pixels_one, question = runtime.prepare(VqaRequest(**workload.body))
            for batch in BATCHES:
                x = np.concatenate([pixels_one.numpy()] * batch)
                enc = tokenizer([question] * batch, padding="longest", return_tensors="np")
                ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
                steps: list[int] = []

                def run(engine: Any = engine, x: Any = x, ids: Any = ids, mask: Any = mask,
                        steps: list[int] = steps) -> None:
                    steps.append(len(engine.generate(x, ids, mask, runtime.settings.max_new_tokens,
                                                     model.decoder_start_token_id, runtime.eos_id,
                                                     runtime.pad_id)[1]))

                times = _time(run, seconds, min_runs=2)
                cells.append(_cell("vqa", workload, variant, batch, times, engine.precision, agree, len(items),
                                   decoder_steps=steps[-1]))
    runtime.unload()
    return cells


def _cell(task: str, workload: Workload, variant: str, batch: int, times: list[float], precision: str,
          agrees: float, agreement_n: int, **extra: Any) -> dict[str, Any]:
    """One anchor cell, shaped like the bench's HTTP cells (requests/s, p50/p95 of one batch call)."""
    times = sorted(times)
    return {"task": task, "workload": workload.name, "variant": variant, "concurrency": batch, "batch": batch,
            "throughput_rps": round(batch / statistics.median(times), 3),
            "p50_ms": round(1000 * percentile(times, 50), 2), "p95_ms": round(1000 * percentile(times, 95), 2),
            "runs": len(times), "precision": precision, "agrees_with_fp32": agrees, "agreement_n": agreement_n,
            **extra}


def style_anchor_cells(version_dir: Path, settings: Any, workloads: list[Workload], threads: int,
                       seconds: float = 4.0, agreement_inputs: int = 200) -> list[dict[str, Any]]:
    """The style network (Keras) exported to ONNX Runtime and converted to OpenVINO: one cell per
    (runtime, workload, batch), with the share of generated scenes whose output image matches
    the Keras fp32 one (``image_agreement``). OpenVINO is timed compiled for the workload's fixed
    input shape, its best case."""
    import numpy as np
    import onnxruntime as ort
    import openvino as ov

    from services.common import openvino_backend as ovb
    from services.style.runtime import StyleRequest, StyleRuntime, image_agreement

    runtime = StyleRuntime(settings.model_copy(update={"bf16": "off", "warmup": False}), Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    model = runtime.model
    checks = runtime.agreement_inputs(agreement_inputs).astype(np.float32)

    def outputs(run: Any) -> np.ndarray:
        return np.concatenate([np.clip(np.asarray(run(checks[lo:lo + 8])), 0, 255).round()
                               for lo in range(0, len(checks), 8)])

    reference = outputs(lambda x: runtime._call(x).numpy())
    inputs = {w.name: runtime.prepare(StyleRequest(**w.body)) for w in workloads}
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model.export(str(Path(tmp) / "style.onnx"), format="onnx", verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(Path(tmp) / "style.onnx"), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        model.export(str(Path(tmp) / "saved"), format="tf_saved_model", verbose=False)
        ov_model = ov.convert_model(str(Path(tmp) / "saved"))

    def ov_compiled(shape: list[int] | None, bf16: bool | None) -> Any:
        graph = ov_model.clone()
        if shape is not None:
            graph.reshape({graph.inputs[0].get_any_name(): shape})
        compiled = ovb.compile_encoder(graph, ["image"], threads, bf16)
        return compiled, (lambda x: compiled({"image": x})[0])

    runners: list[tuple[str, str, Any, Any]] = [
        ("onnxruntime", "fp32", lambda x: session.run(None, {name: x})[0], lambda shape: None)]
    default = ov_compiled(None, None)  # OpenVINO's own precision; f32 too when that is not f32
    for bf16, (compiled, run) in [(None, default)] + ([] if default[0].precision == "fp32"
                                                      else [(False, ov_compiled(None, False))]):
        runners.append(("openvino", compiled.precision, run,
                        lambda shape, bf16=bf16: ov_compiled(shape, bf16)[1]))
    for variant, precision, run, fixed in runners:
        agree = round(image_agreement(reference, outputs(run)), 4)
        for workload in workloads:
            for batch in BATCHES:
                x = np.stack([inputs[workload.name]] * batch)
                timed = fixed(list(x.shape)) or run
                times = _time(lambda x=x, timed=timed: timed(x), seconds, min_runs=2)
                cells.append(_cell("style", workload, variant, batch, times, precision, agree, len(checks)))
    runtime.unload()
    return cells

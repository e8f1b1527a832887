"""The predictor: normalise, tokenise, encode once per input kind, and answer every task asked."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from serving.abstention import abstain
from serving.bundle import (
    Manifest,
    has_target,
    load_bundle,
    load_document_models,
    load_ngram_models,
    load_tokenizer,
    no_target,
    read_manifest,
    target_key,
)
from serving.encoder import BertEncoder
from serving.errors import RasidError
from serving.fusion import fuse
from serving.normalize import normalize
from serving.precision import resolve_precision

ONEDNN_CACHE_CAPACITY = 16


@dataclass(frozen=True)
class Item:
    text: str
    target: str | None = None


@dataclass
class ItemResult:
    # task -> {"label", "score", "scores": {label: probability}}, and for a pair task whose bundle lists the
    # targets it was trained on, "target_seen": whether this item's target is one of them
    predictions: dict[str, dict]
    truncated: bool = False  # some input of this item was longer than the model window
    skipped_tasks: list[str] = field(default_factory=list)  # pair tasks not run because no target was given


class Predictor:
    """Answers tasks for texts (and text-target pairs) with a loaded bundle.

    Single-input tasks share one encoding of the text, pair tasks one encoding of (target, text), so a
    paragraph costs at most two encoder passes whatever the number of tasks. serving.encoder spends nothing
    on padding; for other encoders inputs are sorted by length and padded per batch, so short texts do not
    pay for long ones.
    """

    def __init__(
        self,
        manifest: Manifest,
        model,
        tokenizer,
        batch_size: int = 32,
        precision: str = "auto",
        threads: int | None = None,
        onnx: Path | None = None,
        fused: dict | None = None,
        document_models: dict | None = None,
    ):
        """precision: one of serving.precision.PRECISIONS; "auto" is the bundle's fast path, "fp32" exactly the
        trained model.
        onnx: a `rasid export --format onnx` folder of this bundle, run by ONNX Runtime instead of torch.
        threads: intra-op threads (process-wide in torch); None keeps torch's default, one per core."""
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.fused = fused or {}  # task -> serving.fusion.FusedTask
        self.document_models = document_models or {}  # task -> serving.verdict.DocumentModel
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)
        self._sessions = _onnx_sessions(Path(onnx), manifest, threads) if onnx else None
        chosen = precision != "auto"
        precision = resolve_precision(precision, manifest)
        if precision == "int8" and not chosen and model is not None and not isinstance(model.encoder, BertEncoder):
            # The fast path's int8 is serving.encoder's per-row int8, the one the bundle's cost was measured
            # with. Other encoders would get torch's dynamic int8, whose per-batch scales cost far more
            # (benchmarks/fast_path_accuracy.py): they stay fp32.
            precision = "fp32"
        if precision != "fp32":
            # oneDNN (bf16 and int8 products) keeps a compiled kernel per matrix shape, 1,024 by default, and
            # nearly every batch brings a new shape, so a long-running server's memory grows with them; a small
            # cap keeps it flat (benchmarks/memory.py). Read at its first use, so set before; an
            # ONEDNN_PRIMITIVE_CACHE_CAPACITY of the user's own wins.
            os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))
        self.precision = precision
        self.quantized = precision == "int8" and not onnx
        self.model = None if onnx else _quantize(model) if self.quantized else model
        if self.model is not None:
            self.model.eval()
        # A transformers encoder holds fp32 weights, so bf16 runs under autocast; serving.encoder loaded in
        # bf16 (from_bundle) already computes in bf16 and needs no autocast.
        self._autocast = precision == "bf16" and self.model is not None and not _computes_in_bf16(self.model.encoder)
        self._temperatures = {t.name: t.temperature for t in manifest.tasks}

    @classmethod
    def from_bundle(cls, path: Path, **options) -> "Predictor":
        """Load a bundle for inference. A BERT encoder runs on serving.encoder: bf16 weights for bf16 (half the
        memory), fp32 for fp32 and int8. int8 quantises the exact fp32 weights (and keeps fp32 word embeddings):
        that is what the bundle's int8 cost was measured on, and quantising bf16 copies measured worse
        (benchmarks/fast_path_accuracy.py)."""
        if options.pop("fusion", True):  # the n-gram half of a fused bundle (serving/fusion.py), if it has one
            options["fused"] = load_ngram_models(path)
            options["document_models"] = load_document_models(path)  # learned verdicts (serving/verdict.py)
        if options.get("onnx"):  # ONNX Runtime runs the graphs: no torch model to load
            return cls(read_manifest(path), None, load_tokenizer(path), **options)
        precision = resolve_precision(options.get("precision", "auto"), read_manifest(path))
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        manifest, model, tokenizer = load_bundle(path, inference_dtype=dtype)
        return cls(manifest, model, tokenizer, **options)

    @property
    def backend(self) -> str:
        return "onnxruntime" if self._sessions else f"torch-{self.precision}"

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.manifest.tasks]

    def check_tasks(self, tasks: Iterable[str] | None) -> list[str]:
        if tasks is None:
            return self.task_names
        tasks = list(tasks)
        unknown = [t for t in tasks if t not in self.task_names]
        if unknown:
            raise RasidError(f"unknown task(s) {unknown}; this model has {self.task_names}.")
        return tasks

    def predict(
        self, texts, targets=None, tasks=None, abstain_below: float | None = None, abstain_unseen_targets: bool = False
    ):
        """Predict for one string or a list of strings, and answer in kind: a dict, or a list of dicts."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if targets is None or isinstance(targets, str):
            targets = [targets] * len(texts)
        results = self.predict_items(
            [Item(t, g) for t, g in zip(texts, targets)],
            tasks,
            abstain_below,
            abstain_unseen_targets=abstain_unseen_targets,
        )
        answers = [r.predictions for r in results]
        return answers[0] if single else answers

    def predict_items(
        self,
        items: list[Item],
        tasks=None,
        abstain_below: float | None = None,
        progress: Callable[[int], None] | None = None,
        abstain_unseen_targets: bool = False,
    ) -> list[ItemResult]:
        """Predict every requested task the item can take. Pair tasks need a target: asked for explicitly
        without one, that is an error; by default they are skipped and listed in `skipped_tasks`.

        A pair task whose training targets the bundle lists (a closed task, see serving.bundle.OPEN_ABOVE)
        answers `target_seen`; with abstain_unseen_targets an unseen target's label is serving.abstention.UNCERTAIN (scores kept),
        as is any answer whose score is below abstain_below."""
        explicit = tasks is not None
        tasks = self.check_tasks(tasks)
        kinds = {t.name: t.input for t in self.manifest.tasks}
        single_tasks = [t for t in tasks if kinds[t] == "single"]
        pair_tasks = [t for t in tasks if kinds[t] == "pair"]
        if explicit and pair_tasks and any(not has_target(i.target) for i in items):
            raise RasidError(f"{no_target(pair_tasks)}: give a non-empty 'target'.")
        results = [ItemResult(predictions={}) for _ in items]
        settings = self.manifest.normalization
        texts = [normalize(i.text, settings) for i in items]
        jobs = []  # (tasks, item indices, encoder inputs)
        if single_tasks:
            jobs.append((single_tasks, list(range(len(items))), [(t,) for t in texts]))
        with_target = [k for k, i in enumerate(items) if has_target(i.target)]
        known = {t: self.manifest.known_targets(t) for t in pair_tasks}
        seen = {}  # (task, item index) -> whether the item's target was seen in training, for closed tasks
        for k in with_target if any(v is not None for v in known.values()) else ():
            key = target_key(items[k].target, settings)
            seen.update({(t, k): key in targets for t, targets in known.items() if targets is not None})
        if pair_tasks:
            jobs.append(
                (pair_tasks, with_target, [(normalize(items[k].target, settings), texts[k]) for k in with_target])
            )
            for k in set(range(len(items))) - set(with_target):
                results[k].skipped_tasks = list(pair_tasks)
        # Torch runs both kinds in the same batches (one encoder call for a paragraph's topic and stance);
        # each ONNX graph takes one kind, so there the kinds run one after the other.
        groups = [jobs] if self._sessions is None else [[job] for job in jobs]
        for group in groups:
            outputs = self._run([(tasks, inputs) for tasks, _, inputs in group], progress)
            for (job_tasks, indices, _), (probabilities, truncated) in zip(group, outputs):
                for position, k in enumerate(indices):
                    results[k].truncated |= truncated[position]
                    for task in job_tasks:
                        answer = self._answer(task, probabilities[task][position], seen.get((task, k)))
                        results[k].predictions[task] = abstain(answer, abstain_below, abstain_unseen_targets)
        return results

    def probabilities(self, inputs: list[tuple[str, ...]], tasks: list[str]) -> dict[str, torch.Tensor]:
        """Calibrated probabilities [n, labels] per task for already-normalised inputs of one kind."""
        return self._run([(tasks, inputs)], None)[0][0]

    def _run(self, jobs: list[tuple[list[str], list[tuple[str, ...]]]], progress):
        """For each job (its tasks, its inputs: 1-tuples for single tasks, 2-tuples for pairs), the
        probabilities per task [n, labels] and whether each input was truncated. Inputs of all jobs are
        sorted by length and padded per batch together."""
        max_length = self.manifest.max_length
        encoded, lengths, rows = [], [], []  # rows: (job, position) of each encoded input
        for j, (_, inputs) in enumerate(jobs):
            if not inputs:
                continue
            columns = [list(column) for column in zip(*inputs)]
            full = self.tokenizer(*columns, truncation=False)["input_ids"]
            cut = self.tokenizer(*columns, truncation=True, max_length=max_length)
            encoded += [{key: cut[key][k] for key in cut.keys()} for k in range(len(inputs))]
            lengths += [len(ids) for ids in full]
            rows += [(j, k) for k in range(len(inputs))]
        order = sorted(range(len(encoded)), key=lambda n: len(encoded[n]["input_ids"]))
        outputs = [{t: [None] * len(inputs) for t in tasks} for tasks, inputs in jobs]
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.tokenizer.pad([encoded[n] for n in chunk], return_tensors="pt")
                needed = sorted({t for n in chunk for t in jobs[rows[n][0]][0]})
                for task, logits in self._logits(batch, needed).items():
                    probabilities = logits.softmax(-1)
                    for row, n in enumerate(chunk):
                        j, k = rows[n]
                        if task in outputs[j]:
                            outputs[j][task][k] = probabilities[row]
                if progress:
                    progress(len(chunk))
        results, offset = [], 0
        for (_tasks, inputs), job_outputs in zip(jobs, outputs):
            stacked = {t: torch.stack(v) if v else torch.empty(0) for t, v in job_outputs.items()}
            stacked = self._fused_with_ngrams(stacked, inputs)
            results.append((stacked, [n > max_length for n in lengths[offset : offset + len(inputs)]]))
            offset += len(inputs)
        return results

    def _fused_with_ngrams(self, probabilities: dict[str, torch.Tensor], inputs) -> dict[str, torch.Tensor]:
        """The encoder's probabilities fused with the bundle's n-gram models, for tasks that have one."""
        if not self.fused or not inputs:
            return probabilities
        texts, targets = [i[-1] for i in inputs], [i[0] if len(i) == 2 else None for i in inputs]
        for task, encoder_probabilities in probabilities.items():
            if task in self.fused:
                item = self.fused[task]
                ngram = item.classifier.probabilities(texts, targets)
                fused = fuse(encoder_probabilities.float().numpy(), ngram, item.weight, item.temperature)
                probabilities[task] = torch.from_numpy(fused.astype(np.float32))
        return probabilities

    def _logits(self, encoded, tasks) -> dict[str, torch.Tensor]:
        """Calibrated logits per task for one tokenised batch (all tasks of one input kind)."""
        if self._sessions is None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._autocast):
                pooled = self.model.encode(**encoded)
            return {t: self.model.head_logits(pooled.float(), t) / self._temperatures[t] for t in tasks}
        session, inputs = self._sessions[self.manifest.task(tasks[0]).input]
        outputs = session.run(tasks, {name: encoded[name].numpy() for name in inputs})
        return dict(zip(tasks, map(torch.from_numpy, outputs)))  # temperatures are folded into the graph

    def _answer(self, task: str, probabilities: torch.Tensor, target_seen: bool | None) -> dict:
        labels = self.manifest.task(task).labels
        best = int(probabilities.argmax())
        answer = {
            "label": labels[best],
            "score": float(probabilities[best]),
            "scores": {l: float(p) for l, p in zip(labels, probabilities)},
        }
        if target_seen is not None:
            answer["target_seen"] = target_seen
        return answer


def _computes_in_bf16(encoder) -> bool:
    return any(isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.bfloat16 for m in encoder.modules())


def _quantize(model):
    """int8 matrix products: serving.encoder's per-row int8 when the encoder is one of its BERTs; otherwise
    torch's dynamic int8 Linear layers (activations scaled per batch, so batch-mates move a text's scores)."""
    if isinstance(model.encoder, BertEncoder):
        model.encoder.quantize_int8()
        return model
    with warnings.catch_warnings():  # torch.ao eager quantisation is deprecated in 2.13; kept for non-BERT encoders
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _onnx_sessions(folder: Path, manifest: Manifest, threads: int | None) -> dict:
    """{input kind: (InferenceSession, input names)} from an export folder, checked against the bundle."""
    import onnxruntime

    try:
        description = json.loads((folder / "rasid_onnx.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RasidError(f"{folder} is not a `rasid export --format onnx` folder ({error}).") from error
    exported = {t["name"]: tuple(t["labels"]) for t in description["tasks"]}
    wanted = {t.name: t.labels for t in manifest.tasks}
    if exported != wanted:
        raise RasidError(f"the ONNX export in {folder} has tasks {exported}, the bundle {wanted}: export it again.")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return {
        kind: (
            onnxruntime.InferenceSession(str(folder / graph["file"]), options, providers=["CPUExecutionProvider"]),
            graph["inputs"],
        )
        for kind, graph in description["graphs"].items()
    }

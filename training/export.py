"""`rasid export`: a bundle as standard Hugging Face classifiers (one folder per task) or as ONNX graphs.

hf   out/<task>/: config.json (id2label/label2id), weights, tokenizer, README.md. The task's temperature is
     folded into the classifier (W/T, b/T), so pipeline scores are the bundle's calibrated scores.
     - pooling "cls": a plain BertForSequenceClassification. Its pooler (tanh(W x + b)) is set to W = eps*I,
       b = 0, where tanh is linear to ~(eps*x)^2/3, and the classifier is scaled by 1/eps: the head sees the
       CLS vector as in the bundle. Loads in transformers.pipeline and text-embeddings-inference.
     - pooling "mean": no standard *ForSequenceClassification mean-pools over a BERT encoder, so the folder
       carries a 40-line custom class (modeling_rasid.py, auto_map): load it with trust_remote_code=True.
       Its model_type is "rasid_bert" so a loader without trust_remote_code fails loudly instead of silently
       running CLS pooling. TEI cannot serve it: train with --pooling cls when TEI is the target.
onnx out/single.onnx, out/pair.onnx: one graph per input kind, inputs as the tokenizer names them, one
     output per task (calibrated logits); rasid_onnx.json (tasks, labels, normalisation) and the tokenizer.
     --int8 quantises the weights with onnxruntime's dynamic quantisation.
The rasid normalisation is NOT inside any exported model: callers must apply it (see the README written).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from serving.errors import RasidError

log = logging.getLogger(__name__)
POOLER_EPS = 1e-4  # tanh(1e-4 * x) = 1e-4 * x * (1 - O(1e-8 x^2)): linear far below float32 noise for |x| < 100
ONNX_MANIFEST = "rasid_onnx.json"
ONNX_OPSET = 17

MEAN_POOLING_CODE = '''"""BERT encoder + masked mean pooling + linear classifier, as exported by `rasid export`."""
import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class RasidBertConfig(BertConfig):
    model_type = "rasid_bert"


class RasidBertForSequenceClassification(BertPreTrainedModel):
    config_class = RasidBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(pooled)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
'''


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a bundle as per-task Hugging Face folders or as ONNX graphs")
    p.add_argument("--model", type=Path, required=True, help="bundle folder")
    p.add_argument("--format", choices=["hf", "onnx"], required=True)
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--int8", action="store_true", help="onnx only: int8 weights (onnxruntime dynamic quantisation)")
    p.add_argument("--tasks", help="comma-separated tasks (default: all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from serving.bundle import load_bundle

    manifest, model, tokenizer = load_bundle(args.model)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else [t.name for t in manifest.tasks]
    specs = [manifest.task(name) for name in names]
    if args.format == "hf":
        if args.int8:
            raise RasidError("--int8 applies to --format onnx only; hf folders stay fp32 for pipeline and TEI.")
        for spec in specs:
            log.info("wrote %s", export_hf_task(manifest, model, tokenizer, spec, args.out / spec.name))
    else:
        export_onnx(manifest, model, tokenizer, specs, args.out, int8=args.int8)
        log.info("wrote %s", args.out)
    return 0


def export_hf_task(manifest, model, tokenizer, spec, out: Path) -> Path:
    """One task as an AutoModelForSequenceClassification folder (see the module docstring for pooling)."""
    import torch
    from transformers import BertForSequenceClassification

    config = model.encoder.config
    if config.model_type != "bert":
        raise RasidError(f"hf export supports BERT encoders; this bundle's encoder is '{config.model_type}'.")
    config = type(config).from_dict({**config.to_dict(), "num_labels": len(spec.labels),
                                      "id2label": spec.id2label, "label2id": spec.label2id,
                                      "problem_type": "single_label_classification"})
    classifier = BertForSequenceClassification(config).eval()
    missing, _ = classifier.bert.load_state_dict(model.encoder.state_dict(), strict=False)
    if any(not key.startswith("pooler.") for key in missing):
        raise RasidError(f"the bundle's encoder does not fit a BertModel (missing {missing[:3]}).")
    head = model.heads[spec.name]
    with torch.no_grad():
        scale = spec.temperature
        if manifest.pooling == "cls":
            classifier.bert.pooler.dense.weight.copy_(torch.eye(config.hidden_size) * POOLER_EPS)
            classifier.bert.pooler.dense.bias.zero_()
            scale = spec.temperature * POOLER_EPS
        else:
            classifier.bert.pooler = None
        classifier.classifier.weight.copy_(head.weight / scale)
        classifier.classifier.bias.copy_(head.bias / spec.temperature)
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out, safe_serialization=True)
    tokenizer.model_max_length = manifest.max_length
    tokenizer.save_pretrained(out)
    if manifest.pooling == "mean":
        _make_mean_pooling_folder(out)
    (out / "README.md").write_text(_readme(manifest, spec), encoding="utf-8")
    return out


def _make_mean_pooling_folder(out: Path) -> None:
    (out / "modeling_rasid.py").write_text(MEAN_POOLING_CODE, encoding="utf-8")
    path = out / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(model_type="rasid_bert", architectures=["RasidBertForSequenceClassification"],
                  auto_map={"AutoConfig": "modeling_rasid.RasidBertConfig",
                            "AutoModelForSequenceClassification": "modeling_rasid.RasidBertForSequenceClassification"})
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _readme(manifest, spec) -> str:
    remote = ", trust_remote_code=True" if manifest.pooling == "mean" else ""
    call = '{"text": normalize(target), "text_pair": normalize(text)}' if spec.input == "pair" else "normalize(text)"
    return f"""# rasid task `{spec.name}` ({spec.input} input), exported from a rasid bundle

Labels: {", ".join(spec.labels)}. Scores are calibrated (temperature {spec.temperature:.4g} is folded into the
classifier). Pooling: {manifest.pooling}{" (custom class in modeling_rasid.py: needs trust_remote_code=True; not loadable by text-embeddings-inference)" if manifest.pooling == "mean" else " (standard BertForSequenceClassification)"}.

**The caller must apply rasid's Arabic normalisation** before tokenising; the model was trained on
normalised text and a pipeline will not do it. Settings:

```json
{json.dumps(manifest.normalization.to_dict(), ensure_ascii=False, indent=2)}
```

```python
from transformers import pipeline
from serving.normalize import NormalizationSettings, normalize  # or re-implement the settings above
classify = pipeline("text-classification", model="PATH/{spec.name}"{remote})
classify({call}, top_k=None, truncation=True)
```
{"Pair input: the target comes first, the text second." if spec.input == "pair" else ""}
Inputs longer than {manifest.max_length} tokens were truncated in training: pass truncation=True.
"""


class _KindGraph:
    """Builds the nn.Module exported for one input kind: encoder once, every task's calibrated logits."""

    @staticmethod
    def build(model, specs):
        import torch

        class Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.names = [s.name for s in specs]
                self.temperatures = [s.temperature for s in specs]

            def forward(self, input_ids, attention_mask, token_type_ids=None):
                pooled = self.model.encode(input_ids, attention_mask, token_type_ids)
                return tuple(self.model.heads[n](pooled) / t for n, t in zip(self.names, self.temperatures))

        return Graph().eval()


def export_onnx(manifest, model, tokenizer, specs, out: Path, int8: bool = False) -> Path:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for kind in ("single", "pair"):
        kind_specs = [s for s in specs if s.input == kind]
        if not kind_specs:
            continue
        sample = ("مثال",) if kind == "single" else ("هدف", "مثال")
        encoded = tokenizer(*[[s, s + " نص أطول"] for s in sample], padding=True, return_tensors="pt")
        inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded]
        path = out / f"{kind}.onnx"
        axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
        axes.update({s.name: {0: "batch"} for s in kind_specs})
        with torch.no_grad():
            torch.onnx.export(_KindGraph.build(model, kind_specs), tuple(encoded[n] for n in inputs), str(path),
                              input_names=inputs, output_names=[s.name for s in kind_specs], dynamic_axes=axes,
                              opset_version=ONNX_OPSET, dynamo=False)  # the TorchScript exporter needs no onnxscript
        if int8:
            _quantize_onnx(path)
        graphs[kind] = {"file": path.name, "inputs": inputs, "tasks": [s.name for s in kind_specs]}
    tokenizer.save_pretrained(out)
    description = {"format": "rasid-onnx", "int8": int8, "max_length": manifest.max_length, "pooling": manifest.pooling,
                   "normalization": manifest.normalization.to_dict(), "graphs": graphs,
                   "tasks": [{"name": s.name, "labels": list(s.labels), "input": s.input} for s in specs]}
    (out / ONNX_MANIFEST).write_text(json.dumps(description, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out


def _quantize_onnx(path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_suffix(".fp32.onnx")
    path.rename(fp32)
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    fp32.unlink()

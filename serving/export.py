"""`rasid export`: a bundle as standard Hugging Face classifiers (one folder per task) or as ONNX graphs.

hf   out/<task>/: config.json (id2label/label2id), weights, tokenizer, README.md. The task's temperature is
     folded into the classifier (W/T, b/T), so pipeline scores are the bundle's calibrated scores. The bundle's
     normalisation (serving/normalize.py with the manifest's settings) is baked into the tokenizer: its
     tokenizer.json normalizer runs the same steps (tokenizers' Replace with Oniguruma regexes that match
     exactly what Python's re matches) before the base's own normalizer, so pipeline(), text-embeddings-inference
     or any server loading the folder gets raw text treated as `rasid predict` treats it. Export refuses if the
     baked steps disagree with serving.normalize on a probe of tricky strings (e.g. after normalize.py changed).
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
The ONNX folder's tokenizer is the bundle's, unchanged: rasid's Predictor (--onnx) normalises before it, and
rasid_onnx.json gives other callers the settings.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path

from serving.errors import RasidError
from serving.options import add_command

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
    p = add_command(
        subparsers,
        "export",
        "write a bundle as per-task Hugging Face folders or as ONNX graphs",
        "rasid export --model models/my-bundle --format hf --out exported/my-bundle",
        description=__doc__.split("\n\n", 1)[0],
    )
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="bundle folder")
    p.add_argument(
        "--format",
        choices=["hf", "onnx"],
        required=True,
        help="hf: one transformers folder per task (pipeline, text-embeddings-inference); onnx: one "
        "graph per input kind",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write")
    p.add_argument("--int8", action="store_true", help="onnx only: int8 weights (onnxruntime dynamic quantisation)")
    p.add_argument("--tasks", help="comma-separated tasks (default: all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from serving.bundle import load_bundle, load_ngram_models

    manifest, model, tokenizer = load_bundle(args.model)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else [t.name for t in manifest.tasks]
    specs = [manifest.task(name) for name in names]
    if args.format == "hf":
        if args.int8:
            raise RasidError("--int8 applies to --format onnx only; hf folders stay fp32 for pipeline and TEI.")
        fused = load_ngram_models(args.model)
        for spec in specs:
            log.info(
                "wrote %s", export_hf_task(manifest, model, tokenizer, spec, args.out / spec.name, fused.get(spec.name))
            )
    else:
        export_onnx(manifest, model, tokenizer, specs, args.out, int8=args.int8)
        log.info("wrote %s", args.out)
    return 0


def export_hf_task(manifest, model, tokenizer, spec, out: Path, fused=None) -> Path:
    """One task as an AutoModelForSequenceClassification folder (see the module docstring for pooling).

    fused: the task's serving.fusion.FusedTask, if the bundle fuses it with a char n-gram model. With encoder
    weight 1 the fusion is only a second temperature, folded in like the first; otherwise the n-gram half cannot
    go into a transformers folder, and the export answers like the encoder alone (said in its README)."""
    import torch
    from transformers import BertForSequenceClassification

    config = model.encoder.config
    if config.model_type != "bert":
        raise RasidError(f"hf export supports BERT encoders; this bundle's encoder is '{config.model_type}'.")
    config = type(config).from_dict(
        {
            **config.to_dict(),
            "num_labels": len(spec.labels),
            "id2label": spec.id2label,
            "label2id": spec.label2id,
            "problem_type": "single_label_classification",
        }
    )
    classifier = BertForSequenceClassification(config).eval()
    missing, _ = classifier.bert.load_state_dict(model.encoder.state_dict(), strict=False)
    if any(not key.startswith("pooler.") for key in missing):
        raise RasidError(f"the bundle's encoder does not fit a BertModel (missing {missing[:3]}).")
    head = model.heads[spec.name]
    # softmax(log softmax(z / T) / T2) = softmax(z / (T T2)): a fusion that keeps the encoder alone is a temperature
    temperature = spec.temperature * (fused.temperature if fused is not None and fused.weight == 1 else 1.0)
    if fused is not None and fused.weight != 1:
        log.warning(
            "task '%s': the bundle fuses the encoder (weight %.2f) with a char n-gram model that a "
            "transformers folder cannot hold; the export answers like the encoder alone "
            "(`rasid evaluate --no-fusion` measures that)",
            spec.name,
            fused.weight,
        )
    with torch.no_grad():
        scale = temperature
        if manifest.pooling == "cls":
            classifier.bert.pooler.dense.weight.copy_(torch.eye(config.hidden_size) * POOLER_EPS)
            classifier.bert.pooler.dense.bias.zero_()
            scale = temperature * POOLER_EPS
        else:
            classifier.bert.pooler = None
        classifier.classifier.weight.copy_(head.weight / scale)
        classifier.classifier.bias.copy_(head.bias / temperature)
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out, safe_serialization=True)
    tokenizer.model_max_length = manifest.max_length
    tokenizer.save_pretrained(out)
    bake_normalization(out, manifest.normalization, tokenizer)
    if manifest.pooling == "mean":
        _make_mean_pooling_folder(out)
    (out / "README.md").write_text(_readme(manifest, spec, temperature, fused), encoding="utf-8")
    return out


def _make_mean_pooling_folder(out: Path) -> None:
    (out / "modeling_rasid.py").write_text(MEAN_POOLING_CODE, encoding="utf-8")
    path = out / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(
        model_type="rasid_bert",
        architectures=["RasidBertForSequenceClassification"],
        auto_map={
            "AutoConfig": "modeling_rasid.RasidBertConfig",
            "AutoModelForSequenceClassification": "modeling_rasid.RasidBertForSequenceClassification",
        },
    )
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _readme(manifest, spec, temperature: float | None = None, fused=None) -> str:
    temperature = spec.temperature if temperature is None else temperature
    mean = manifest.pooling == "mean"
    remote = ", trust_remote_code=True" if mean else ""
    call = '{"text": target, "text_pair": text}' if spec.input == "pair" else "text"
    pooling = (
        MEAN_POOLING_README.format(task=spec.name, max_length=manifest.max_length)
        if mean
        else (
            "Pooling: cls. A standard `BertForSequenceClassification` (its pooler is set to pass the [CLS] vector "
            "through unchanged): it loads without remote code, in transformers and text-embeddings-inference.\n"
        )
    )
    return f"""# rasid task `{spec.name}` ({spec.input} input), exported from a rasid bundle

Labels: {", ".join(spec.labels)}. Scores are calibrated (temperature {temperature:.4g} is folded into the
classifier).
{_fusion_note(fused)}
```python
from transformers import pipeline
classify = pipeline("text-classification", model="PATH/{spec.name}"{remote})
classify({call}, top_k=None, truncation=True)
```
{"Pair input: the target comes first, the text second." if spec.input == "pair" else ""}
Inputs longer than {manifest.max_length} tokens were truncated in training: pass truncation=True.

**Give it raw text.** rasid's Arabic normalisation (links to `URL`, @mentions to `@USER`, diacritics and tatweel
removed, whitespace collapsed, with the bundle's settings below) is baked into this folder's tokenizer: the
first steps of the normalizer in `tokenizer.json` do exactly what `serving/normalize.py` does, so any loader of
this folder (pipeline, text-embeddings-inference, your own server) answers like `rasid predict`. Normalising
before calling does no harm: the steps change nothing the second time. Settings:

```json
{json.dumps(manifest.normalization.to_dict(), ensure_ascii=False, indent=2)}
```

{pooling}"""


def _fusion_note(fused) -> str:
    if fused is None or fused.weight == 1:
        return ""
    return (
        f"\n**Not the bundle's whole answer.** The bundle fuses this encoder's probabilities (weight "
        f"{fused.weight:.2f}) with a character n-gram model's (weight {1 - fused.weight:.2f}); a transformers "
        f"folder holds the encoder only, so these scores are the encoder's alone, as `rasid evaluate "
        f"--no-fusion` measures them, and may differ from `rasid predict` and `rasid serve`.\n"
    )


MEAN_POOLING_README = """## Why `trust_remote_code=True`

This model was trained on the **mean of all token vectors** (mean pooling). The standard
`BertForSequenceClassification` classifies from the first token ([CLS]) passed through a pooler instead, and
no class in transformers mean-pools a BERT for classification. So this folder carries its own 40-line class
(`modeling_rasid.py`, named in `config.json`'s `auto_map`), and transformers only runs code shipped in a model
folder when `trust_remote_code=True` says you trust it: read the file first, it is short. Its `model_type` is
`rasid_bert` on purpose: a loader without remote code fails loudly instead of silently classifying from [CLS]
(which would give other labels). text-embeddings-inference cannot serve it; retrain with `rasid train --pooling
cls` when you need a standard folder.

### Without remote code

The weights are a plain BERT (`bert.*`) and a linear classifier (`classifier.*`), so the same scores come from
standard classes and a few lines:

```python
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertModel

path = "PATH/{task}"
tokenizer = AutoTokenizer.from_pretrained(path)  # raw text: the normalisation is in the tokenizer
encoder = BertModel.from_pretrained(path, add_pooling_layer=False).eval()  # warns that model_type is rasid_bert
weights = load_file(f"{{path}}/model.safetensors")
labels = [encoder.config.id2label[i] for i in range(encoder.config.num_labels)]


def classify(texts, targets=None):
    inputs = (targets, texts) if targets is not None else (texts,)  # pair tasks: target first
    batch = tokenizer(*inputs, padding=True, truncation=True, max_length={max_length}, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    logits = pooled @ weights["classifier.weight"].T + weights["classifier.bias"]
    return [dict(zip(labels, row.tolist())) for row in logits.softmax(-1)]
```
"""


# --- the normalisation, baked into a tokenizer --------------------------------------------------------------
# serving/normalize.py's steps, in its order, as tokenizers normalizers. Its regexes are Python's `re`; the
# tokenizers library runs Oniguruma, whose \w, \s and case-folding differ (e.g. Oniguruma's \w includes
# combining marks such as Arabic diacritics, Python's does not). So each pattern is translated with its classes
# spelt out as the exact code points Python's re matches (found by running re itself over every code point), and
# bake_normalization checks the result against normalize() on PROBES before writing anything.

PROBES = [
    "  رابط https://example.com/a?b=1 و HTTP://X.ORG و Www.Site.net/path\tونص  ",
    "شاهد @user_1 و@محمد و a@b.com و @محمدٌabc و (@حساب) @ وحدها",
    "الـــلـــه أكــبــر، مَرْحَبًا بِكُمْ ٱلسَّلَامُ عَلَيْكُمْ ۖ آية ۚ",
    "أإآٱ ى ة ه ي ا",
    "مسافات\u00a0غير\u2003منقسمة\u3000و\u2028سطر\u2029فقرة\x1c\x1d\x1e\x1fو\x85و\u200aو\u202f\u205f",
    "عرض\u200bصفري\u200cو\u200dو\ufeffو\u2066عزل\u2069و\u202bو\x00نل",
    "ﻻ ﷲ ﻋﻠﻰ ﹰ ﹱ presentation forms",
    "ſhttps://x.org KELVIN \u212a ﬀ ǅ ß ẞ İ ı",
    "\n\nسطر أول\r\nسطر ثان\n",
    "😀 @😀 www.😀.com https://😀",
    "",
]


@lru_cache(maxsize=None)
def _all_characters() -> str:
    """Every code point a tokenizer can receive (surrogates cannot be UTF-8), in one string for re.findall."""
    return "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


@lru_cache(maxsize=None)
def _matched(pattern: str, flags: int = 0) -> str:
    """The body of an Oniguruma character class holding exactly the code points `pattern` (one character)
    matches under Python's re with `flags`."""
    points = sorted({ord(c) for c in re.findall(pattern, _all_characters(), flags)})
    ranges, start = [], None
    for k, point in enumerate(points):
        if start is None:
            start = point
        if k + 1 == len(points) or points[k + 1] != point + 1:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{point:x}}}" if point != start else ""))
            start = None
    return "".join(ranges)


_CLASS_ESCAPES = {"w": r"\w", "s": r"\s", "d": r"\d"}


def onig_pattern(pattern: re.Pattern) -> str:
    """`pattern` as an Oniguruma regex matching the same strings. Knows what serving.normalize uses: literals,
    groups, alternation, quantifiers, lookbehind, character classes of literals, \\w \\s \\d and their negations,
    escaped punctuation, and IGNORECASE on literals outside classes. Anything else is refused, not guessed."""
    ignore_case = bool(pattern.flags & re.IGNORECASE)
    if pattern.flags & (re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII | re.LOCALE):
        raise RasidError(f"cannot bake the normalisation pattern {pattern.pattern!r}: flags {pattern.flags}.")
    source, out, k = pattern.pattern, [], 0
    while k < len(source):
        c = source[k]
        if c == "\\":
            escape = source[k + 1]
            k += 2
            if escape.lower() in _CLASS_ESCAPES:
                body = _matched(_CLASS_ESCAPES[escape.lower()])
                out.append(f"[{'^' if escape.isupper() else ''}{body}]")
            elif not escape.isalnum():
                out.append("\\" + escape)
            else:
                raise RasidError(f"cannot bake the normalisation pattern {source!r}: escape \\{escape}.")
        elif c == "[":
            end = source.index("]", k + 1)
            body = source[k + 1 : end]
            # Oniguruma reads "[" and "&&" inside a class as nesting and intersection; Python does not
            if (
                any(x in body for x in ("\\", "[", "&&"))
                or body.startswith("^")
                or (ignore_case and any(ch.lower() != ch.upper() for ch in body))
            ):
                raise RasidError(f"cannot bake the normalisation pattern {source!r}: class [{body}].")
            out.append(f"[{body}]")
            k = end + 1
        elif c == "(" and source.startswith("(?", k):
            group = next((g for g in ("(?:", "(?=", "(?!", "(?<=", "(?<!") if source.startswith(g, k)), None)
            if group is None:
                raise RasidError(f"cannot bake the normalisation pattern {source!r}: group {source[k : k + 4]!r}.")
            out.append(group)
            k += len(group)
        elif c in ".^$":
            raise RasidError(f"cannot bake the normalisation pattern {source!r}: {c!r} differs between engines.")
        elif ignore_case and c.lower() != c.upper():
            out.append(f"[{_matched(re.escape(c), re.IGNORECASE)}]")
            k += 1
        else:
            out.append(c)
            k += 1
    return "".join(out)


def rasid_normalizers(settings) -> list:
    """serving.normalize.normalize(text, settings) as a list of tokenizers normalizers, step for step."""
    from tokenizers import Regex, normalizers

    from serving import normalize as rasid

    replace = lambda pattern, content: normalizers.Replace(Regex(onig_pattern(pattern)), content)
    steps = []
    if settings.url_token is not None:
        steps.append(replace(rasid._URL, settings.url_token))
    if settings.mention_token is not None:
        steps.append(replace(rasid._MENTION, settings.mention_token))
    if settings.strip_diacritics:
        steps.append(replace(rasid._DIACRITICS, ""))
    if settings.strip_tatweel:
        steps.append(normalizers.Replace(rasid._TATWEEL, ""))
    if settings.unify_alef:
        steps.append(replace(rasid._ALEF_VARIANTS, "\u0627"))
    if settings.unify_yaa:
        steps.append(normalizers.Replace("\u0649", "\u064a"))
    if settings.unify_taa_marbuta:
        steps.append(normalizers.Replace("\u0629", "\u0647"))
    if settings.collapse_whitespace:
        # after the collapse the only whitespace left is single spaces, so str.strip() is removing one at each end
        steps += [replace(rasid._SPACES, " "), normalizers.Replace(Regex(r"\A | \z"), "")]
    return steps


def bake_normalization(folder: Path, settings, tokenizer) -> None:
    """Prepend rasid's normalisation to the normalizer of the tokenizer saved in `folder` (tokenizer.json), so that
    loading the folder gives a tokenizer that reads raw text as `tokenizer` (the bundle's) reads normalised text.
    Checked twice before returning: the baked steps against serving.normalize on PROBES, and the reloaded folder
    against the bundle's tokenizer on normalised PROBES, single and paired."""
    from tokenizers import Tokenizer, normalizers
    from transformers import AutoTokenizer

    from serving.normalize import normalize

    steps = rasid_normalizers(settings)
    baked = normalizers.Sequence(steps)
    wrong = [p for p in PROBES if baked.normalize_str(p) != normalize(p, settings)]
    if wrong:
        raise RasidError(
            f"the normalisation baked into the exported tokenizer differs from serving/normalize.py on "
            f"{wrong[0]!r} ({baked.normalize_str(wrong[0])!r} against {normalize(wrong[0], settings)!r}): "
            f"serving/export.py must learn the change to normalize.py before exporting."
        )
    path = Path(folder) / "tokenizer.json"
    backend = Tokenizer.from_file(str(path))
    own = [backend.normalizer] if backend.normalizer is not None else []
    backend.normalizer = normalizers.Sequence([*steps, *own])
    backend.save(str(path))
    # transformers 5 rebuilds a named tokenizer class (XLMRobertaTokenizer: the offline base's) from its vocabulary
    # and its own normalizer, dropping ours; the generic class loads tokenizer.json as written (transformers 4
    # too). The inputs the model takes stay the bundle tokenizer's (XLM-R gives no token_type_ids).
    config_path = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(tokenizer_class="PreTrainedTokenizerFast", model_input_names=list(tokenizer.model_input_names))
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    exported = AutoTokenizer.from_pretrained(folder)
    for probe in PROBES:
        pair = (probe or "هدف", probe)  # an empty target is not a pair
        if exported(probe) != tokenizer(normalize(probe, settings)) or exported(*pair) != tokenizer(
            *(normalize(x, settings) for x in pair)
        ):
            raise RasidError(
                f"the exported tokenizer in {folder} does not read {probe!r} as the bundle reads its "
                f"normalised form; this transformers ({_transformers_version()}) may load tokenizers "
                f"differently: please report it."
            )


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


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
            torch.onnx.export(
                _KindGraph.build(model, kind_specs),
                tuple(encoded[n] for n in inputs),
                str(path),
                input_names=inputs,
                output_names=[s.name for s in kind_specs],
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )  # the TorchScript exporter needs no onnxscript
        if int8:
            _quantize_onnx(path)
        graphs[kind] = {"file": path.name, "inputs": inputs, "tasks": [s.name for s in kind_specs]}
    tokenizer.save_pretrained(out)
    description = {
        "format": "rasid-onnx",
        "int8": int8,
        "max_length": manifest.max_length,
        "pooling": manifest.pooling,
        "normalization": manifest.normalization.to_dict(),
        "graphs": graphs,
        "tasks": [{"name": s.name, "labels": list(s.labels), "input": s.input} for s in specs],
    }
    (out / ONNX_MANIFEST).write_text(json.dumps(description, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out


def _quantize_onnx(path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_suffix(".fp32.onnx")
    path.rename(fp32)
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    fp32.unlink()

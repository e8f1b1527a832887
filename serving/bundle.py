"""The bundle: a folder holding everything a trained model needs. The only module that reads or writes it.

Layout (format 2; format 1 bundles, which have no target inventory, still load):
  config.json, model.safetensors   the encoder, a standard Hugging Face folder (AutoModel loads it)
  tokenizer.json, tokenizer_config.json, ...   its tokenizer (AutoTokenizer loads it)
  heads.safetensors                one linear head per task: "<task>.weight", "<task>.bias"
  rasid.json                       the manifest: tasks and their ordered labels, input kinds,
                                   normalisation, max length, pooling, base, training config,
                                   data hashes, validation metrics (and what per-row int8
                                   costs on them, which decides the fast path), the targets each
                                   pair task saw in training (format 2), rasid version
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from serving import __version__
from serving.errors import BundleError
from serving.files import atomic_folder, write_text
from serving.normalize import NormalizationSettings, normalize

FORMAT_NAME = "rasid-bundle"
# 2: the manifest gained `targets` (what each pair task saw in training). A rasid that reads format 1 only
# would call such a manifest malformed; with the version it says "upgrade rasid" instead.
FORMAT_VERSION = 2
MANIFEST_FILE = "rasid.json"
HEADS_FILE = "heads.safetensors"
ENCODER_FILES = ("config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
INPUT_KINDS = ("single", "pair")
# When a pair task's targets are "open" (any target is normal, so "seen in training" says nothing): claims are
# written per news item, most of them seen once, while target stance is learnt per target, each with many rows
# (docs/honest-answers.md has the counts). A task is open when training named more than OPEN_ABOVE distinct
# targets, or at least OPEN_MIN distinct targets most of which occur in one row only (a small claim set).
OPEN_ABOVE = 50
OPEN_MIN = 10


@dataclass(frozen=True)
class TaskSpec:
    """One task: its labels in head order (stored once; the maps are derived so they cannot disagree)."""

    name: str
    labels: tuple[str, ...]
    input: str  # "single": the text alone; "pair": (target, text)
    temperature: float = 1.0  # divides the logits; fitted on validation so scores are calibrated

    def __post_init__(self):
        if self.input not in INPUT_KINDS:
            raise BundleError(f"task '{self.name}' has input kind '{self.input}'; expected one of {INPUT_KINDS}.")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise BundleError(f"task '{self.name}' needs at least two distinct labels, got {list(self.labels)}.")
        if not self.temperature > 0:
            raise BundleError(f"task '{self.name}' has temperature {self.temperature}; it must be positive.")

    @property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))


def has_target(target: str | None) -> bool:
    """Whether a pair task can run on an input: its target has something in it."""
    return bool(target and target.strip())


def no_target(tasks) -> str:
    """The one sentence for pair tasks asked of an input without a target (callers say where, and what to do)."""
    return f"task(s) {list(tasks)} compare a text with a target, but there is no target"


@dataclass
class Manifest:
    tasks: list[TaskSpec]
    max_length: int
    base_model: str
    normalization: NormalizationSettings = field(default_factory=NormalizationSettings)
    pooling: str = "mean"
    training: dict = field(default_factory=dict)
    data: list[dict] = field(default_factory=list)  # [{"path", "sha256", "rows"}]
    metrics: dict = field(default_factory=dict)  # validation metrics, per task
    # per pair task: {"open": bool, "rows", "distinct", "counts": {target: rows}}; counts for closed tasks only.
    # Empty in bundles made before format 2: nothing is known about their targets.
    targets: dict = field(default_factory=dict)
    rasid_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise BundleError(f"this bundle has no task '{name}'; it has {[t.name for t in self.tasks]}.")

    def known_targets(self, name: str) -> frozenset[str] | None:
        """The match keys (target_key) of the targets task `name` saw in training; None when that is not
        known (a bundle from before format 2, a single-input task) or says nothing (an open task)."""
        record = self.targets.get(name)
        if not record or record.get("open"):
            return None
        return frozenset(key.casefold() for key in record.get("counts", {}))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tasks"] = [{**asdict(t), "labels": list(t.labels)} for t in self.tasks]
        data["normalization"] = self.normalization.to_dict()
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest") -> "Manifest":
        if data.get("format") != FORMAT_NAME:
            raise BundleError(f"{where} is not a rasid bundle manifest (format is {data.get('format')!r}).")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise BundleError(
                f"{where} was written by a newer rasid (bundle format {version}, rasid {data.get('rasid_version')}); "
                f"this rasid {__version__} reads format {FORMAT_VERSION} at most: upgrade rasid."
            )
        body = {k: v for k, v in data.items() if k not in {"format", "format_version"}}
        try:
            body["tasks"] = [TaskSpec(**{**t, "labels": tuple(t["labels"])}) for t in body["tasks"]]
            body["normalization"] = NormalizationSettings.from_dict(body.get("normalization", {}))
            return cls(**body)
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{where} is malformed: {error}.") from error


def target_key(target: str, settings: NormalizationSettings) -> str:
    """What two targets must share to be the same target: the same text after the bundle's normalisation,
    ignoring case ("Covid Vaccine" and "covid  vaccine" are one target)."""
    return normalize(target, settings).casefold()


def target_inventory(rows, specs, settings: NormalizationSettings) -> dict:
    """For the manifest's `targets`: per pair task, how many training rows named each target (after
    normalisation; case variants counted under the first spelling seen), or, for an open task (see OPEN_ABOVE),
    only that it is open with its numbers of rows and distinct targets. `rows` have `.labels` and `.target`."""
    inventory = {}
    for spec in specs:
        if spec.input != "pair":
            continue
        counts, spelling = {}, {}
        for row in rows:
            if spec.name in row.labels and has_target(row.target):
                key = target_key(row.target, settings)
                spelling.setdefault(key, normalize(row.target, settings))
                counts[key] = counts.get(key, 0) + 1
        once = sum(1 for n in counts.values() if n == 1)
        is_open = len(counts) > OPEN_ABOVE or (len(counts) >= OPEN_MIN and once > len(counts) / 2)
        record = {"open": is_open, "rows": sum(counts.values()), "distinct": len(counts)}
        if not is_open:
            record["counts"] = {spelling[k]: n for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
        inventory[spec.name] = record
    return inventory


def read_manifest(path: Path) -> Manifest:
    """Read and check a bundle's manifest and that every file the bundle needs is present."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle folder (it does not exist or is a file).")
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{path} has no {MANIFEST_FILE}: it is not a rasid bundle, or its writing was interrupted.")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{manifest_path} is not valid JSON ({error}).") from error
    manifest = Manifest.from_dict(data, where=str(manifest_path))
    missing = [name for name in (HEADS_FILE, *ENCODER_FILES, *TOKENIZER_FILES) if not (path / name).is_file()]
    if missing:
        raise BundleError(f"bundle {path} is missing {', '.join(missing)}; rebuild it with `rasid train`.")
    return manifest


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Rewrite an existing bundle's manifest (e.g. with new measurements), atomically: a reader sees the old
    one or the new one, never half of either."""
    read_manifest(path)  # an existing, complete bundle
    write_text(Path(path) / MANIFEST_FILE, json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2) + "\n")


def save_bundle(path: Path, model, tokenizer, manifest: Manifest) -> Path:
    """Write the bundle atomically (serving/files.py): into a temporary sibling, then swap it in by rename."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_folder(path) as temporary:
        model.encoder.save_pretrained(temporary, safe_serialization=True)
        tokenizer.save_pretrained(temporary)
        heads = {
            f"{name}.{part}": tensor.detach().float().contiguous().cpu()
            for name, head in model.heads.items()
            for part, tensor in head.state_dict().items()
        }
        save_file(heads, str(temporary / HEADS_FILE))
        (temporary / MANIFEST_FILE).write_text(
            json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return path


def load_bundle(path: Path, inference_dtype=None):
    """Return (manifest, MultiTaskModel in eval mode, tokenizer) from a bundle folder.

    inference_dtype (torch.float32 or torch.bfloat16): load a BERT encoder with `serving.encoder` for
    inference only, its matrix weights in that dtype (less memory than transformers; see that module).
    None, or an encoder of another architecture: the transformers model, fp32, trainable."""
    from serving.encoder import EncoderConfig, load_encoder
    from serving.model import MultiTaskModel

    path = Path(path)
    manifest = read_manifest(path)
    config = _encoder_config(path)
    if inference_dtype is not None and EncoderConfig.supports(config):
        encoder = load_encoder(path, inference_dtype)
    else:
        from transformers import AutoModel

        bert = config.get("model_type") == "bert"
        encoder = AutoModel.from_pretrained(path, add_pooling_layer=False) if bert else AutoModel.from_pretrained(path)
    tokenizer = load_tokenizer(path)
    model = MultiTaskModel(encoder, {t.name: len(t.labels) for t in manifest.tasks}, pooling=manifest.pooling)
    load_heads(model, path, manifest.tasks)
    model.eval()
    return manifest, model, tokenizer


def load_heads(model, path: Path, tasks: list[TaskSpec]) -> None:
    """The bundle's trained heads of `tasks` into `model` (a MultiTaskModel with a head for each)."""
    from safetensors.torch import load_file

    heads = load_file(str(Path(path) / HEADS_FILE))
    for spec in tasks:
        head = model.heads[spec.name]
        try:
            head.load_state_dict({"weight": heads[f"{spec.name}.weight"], "bias": heads[f"{spec.name}.bias"]})
        except (KeyError, RuntimeError) as error:
            raise BundleError(
                f"bundle {path}: the head of task '{spec.name}' does not match its {len(spec.labels)} "
                f"labels in {MANIFEST_FILE} ({error})."
            ) from error


def load_tokenizer(path: Path):
    """The bundle's tokenizer alone (what an ONNX export's graphs need beside the manifest)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(path))


def _encoder_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BundleError(f"bundle {path}: config.json is unreadable ({error}).") from error


# The n-gram half of a fused bundle (serving/fusion.py): per task its vocabulary, idf and logistic-regression
# weights, and the fusion weight and temperature fitted on validation. Optional: older bundles have none.
NGRAM_DIR = "ngram"
FUSION_FILE = "fusion.json"


def save_ngram_models(path: Path, fused: dict) -> None:
    """Write {task: FusedTask} into the bundle's ngram/ folder, replacing any earlier one atomically."""
    from safetensors.numpy import save_file

    path = Path(path)
    read_manifest(path)  # an existing, complete bundle
    with atomic_folder(path / NGRAM_DIR) as temporary:
        described = {}
        for task, item in fused.items():
            model = item.classifier
            save_file(
                {"idf": model.features.idf, "coef": model.coef, "intercept": model.intercept},
                str(temporary / f"{task}.safetensors"),
            )
            grams = sorted(model.features.vocabulary, key=model.features.vocabulary.get)
            (temporary / f"{task}.vocab.json").write_text(json.dumps(grams, ensure_ascii=False), encoding="utf-8")
            described[task] = {"weight": item.weight, "temperature": item.temperature, "pair": model.pair}
        (temporary / FUSION_FILE).write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")


def load_ngram_models(path: Path) -> dict:
    """{task: FusedTask} from the bundle's ngram/ folder; {} for a bundle without one."""
    from safetensors.numpy import load_file

    from serving.fusion import FusedTask
    from serving.tfidf import NgramClassifier, TfidfFeatures

    folder = Path(path) / NGRAM_DIR
    if not (folder / FUSION_FILE).is_file():
        return {}
    fused = {}
    try:
        for task, described in json.loads((folder / FUSION_FILE).read_text(encoding="utf-8")).items():
            tensors = load_file(str(folder / f"{task}.safetensors"))
            grams = json.loads((folder / f"{task}.vocab.json").read_text(encoding="utf-8"))
            features = TfidfFeatures({g: k for k, g in enumerate(grams)}, tensors["idf"])
            classifier = NgramClassifier(features, tensors["coef"], tensors["intercept"], described["pair"])
            fused[task] = FusedTask(classifier, float(described["weight"]), float(described["temperature"]))
    except (OSError, ValueError, KeyError) as error:
        raise BundleError(f"bundle {path}: its n-gram models ({NGRAM_DIR}/) cannot be read: {error}.") from error
    return fused


# Learned document verdicts (serving/verdict.py): per pair task, an article-level n-gram classifier and the
# aggregator over paragraph answers. Optional: without one, the task's verdict follows serving.documents' rules.
DOCUMENTS_DIR = "documents"


def save_document_models(path: Path, models: dict) -> None:
    """Write {task: DocumentModel} into the bundle's documents/ folder, replacing any earlier one atomically."""
    import numpy as np
    from safetensors.numpy import save_file

    path = Path(path)
    read_manifest(path)
    with atomic_folder(path / DOCUMENTS_DIR) as temporary:
        for task, model in models.items():
            article = model.article
            save_file(
                {
                    "idf": article.features.idf,
                    "coef": article.coef,
                    "intercept": article.intercept,
                    "aggregator_coef": np.asarray(model.coef, np.float32),
                    "aggregator_intercept": np.asarray(model.intercept, np.float32),
                },
                str(temporary / f"{task}.safetensors"),
            )
            grams = sorted(article.features.vocabulary, key=article.features.vocabulary.get)
            (temporary / f"{task}.vocab.json").write_text(json.dumps(grams, ensure_ascii=False), encoding="utf-8")


def load_document_models(path: Path) -> dict:
    """{task: DocumentModel} from the bundle's documents/ folder; {} for a bundle without one."""
    from safetensors.numpy import load_file

    from serving.tfidf import NgramClassifier, TfidfFeatures
    from serving.verdict import DocumentModel

    folder = Path(path) / DOCUMENTS_DIR
    models = {}
    try:
        for weights in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            task = weights.name[: -len(".safetensors")]
            tensors = load_file(str(weights))
            grams = json.loads((folder / f"{task}.vocab.json").read_text(encoding="utf-8"))
            features = TfidfFeatures({g: k for k, g in enumerate(grams)}, tensors["idf"])
            article = NgramClassifier(features, tensors["coef"], tensors["intercept"], pair=True)
            models[task] = DocumentModel(article, tensors["aggregator_coef"], tensors["aggregator_intercept"])
    except (OSError, ValueError, KeyError) as error:
        raise BundleError(
            f"bundle {path}: its document verdict models ({DOCUMENTS_DIR}/) cannot be read: {error}."
        ) from error
    return models

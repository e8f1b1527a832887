"""rasid export: each exported model answers like the bundle it came from, on raw text.

Tolerance: fp32 exports must give the bundle's calibrated probabilities within 1e-4 (absolute) — float32
reordering noise, plus the tanh-linearised pooler for CLS bundles (relative error ~1e-8) — and the same labels.
The hf exports get raw text (links, mentions, diacritics, tatweel, zero-width and odd spaces): the bundle's
normalisation is baked into their tokenizer.
int8 ONNX is only checked to run and give distributions: its accuracy is measured by benchmarks/fast_path_accuracy.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.normalize import normalize
from serving.predictor import Predictor
from tests.samples import STANCE, TOPIC
from training.cli import main

TOLERANCE = 1e-4
TEXTS = [t for t, _ in TOPIC[::4]]
PAIRS = [(g, t) for g, t, _ in STANCE[::3]]


def raw(text: str, k: int) -> str:
    """`text` as scraped: a link, a mention, diacritics, tatweel, a zero-width joiner, odd spaces and line breaks
    (different ones per k), all things serving.normalize changes or the tokenizer sees."""
    words = text.split(" ")
    words[0] = words[0][:1] + "\u0640\u0640" + words[0][1:] + "\u064e"  # tatweel, fatha
    words[-1] = words[-1] + "\u0651\u200c"  # shadda, zero-width non-joiner
    link = ["https://t.co/Ab3xZ", "WWW.Example.com/خبر", "http://x.org/?a=1&b=2"][k % 3]
    mention = ["@user_12", "@محمد_علي", "@Rasid"][k % 3]
    spaces = ["\u00a0", "  \t", "\n", "\u2003"][k % 4]
    return f"  {mention}{spaces}" + spaces.join(words) + f" {link}\u200b\n"


RAW_TEXTS = [raw(t, k) for k, t in enumerate(TEXTS)]
RAW_PAIRS = [(raw(g, k + 1).strip(), raw(t, k)) for k, (g, t) in enumerate(PAIRS)]


def reference(bundle: Path, texts=TEXTS, pairs=PAIRS):
    """The bundle's own calibrated probabilities (plain fp32 torch), on normalised inputs."""
    predictor = Predictor.from_bundle(bundle, precision="fp32")
    settings = predictor.manifest.normalization
    singles = [(normalize(t, settings),) for t in texts]
    pairs = [(normalize(g, settings), normalize(t, settings)) for g, t in pairs]
    return (
        predictor,
        {
            "topic": predictor.probabilities(singles, ["topic"])["topic"].numpy(),
            **predictor.probabilities(pairs, ["stance", "claim"]),
        },
        singles,
        pairs,
    )


def pipeline_scores(folder: Path, inputs, labels, remote: bool) -> np.ndarray:
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), trust_remote_code=remote, device="cpu")
    answers = classify(inputs, top_k=None, truncation=True)
    return np.array([[{a["label"]: a["score"] for a in answer}[label] for label in labels] for answer in answers])


def sharpened(bundle: Path, pooling: str) -> Path:
    manifest_path = bundle / "rasid.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["pooling"] = pooling  # same weights, other pooling: parity is what this test checks
    for task in manifest["tasks"]:
        task["temperature"] = 0.5  # sharper than the tiny bundle's fitted T=20, so the check is stricter
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return bundle


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_hf_export_on_raw_text_gives_the_bundles_calibrated_scores_and_labels_through_a_pipeline(
    bundle_copy, tmp_path, pooling
):
    predictor, expected, _, _ = reference(sharpened(bundle_copy, pooling), RAW_TEXTS, RAW_PAIRS)
    # the raw texts matter: un-normalised, every one tokenises otherwise and the scores move past the tolerance
    settings = predictor.manifest.normalization
    assert all(
        predictor.tokenizer(t)["input_ids"] != predictor.tokenizer(normalize(t, settings))["input_ids"]
        for t in RAW_TEXTS
    )
    unnormalised = predictor.probabilities([(t,) for t in RAW_TEXTS], ["topic"])["topic"].numpy()
    assert np.abs(unnormalised - expected["topic"]).max() > TOLERANCE

    assert main(["export", "--model", str(bundle_copy), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0

    remote = pooling == "mean"
    topic = predictor.manifest.task("topic").labels
    got = pipeline_scores(tmp_path / "hf" / "topic", RAW_TEXTS, topic, remote)
    np.testing.assert_allclose(got, expected["topic"], atol=TOLERANCE)
    predicted = predictor.predict(RAW_TEXTS, tasks=["topic"])  # what `rasid predict` answers on the raw rows
    assert [topic[k] for k in got.argmax(1)] == [p["topic"]["label"] for p in predicted]
    stance = predictor.manifest.task("stance").labels
    got = pipeline_scores(
        tmp_path / "hf" / "stance", [{"text": g, "text_pair": t} for g, t in RAW_PAIRS], stance, remote
    )
    np.testing.assert_allclose(got, np.asarray(expected["stance"]), atol=TOLERANCE)
    predicted = predictor.predict([t for _, t in RAW_PAIRS], targets=[g for g, _ in RAW_PAIRS], tasks=["stance"])
    assert [stance[k] for k in got.argmax(1)] == [p["stance"]["label"] for p in predicted]


def test_the_exported_tokenizer_reads_raw_text_as_the_bundle_reads_normalised_text(trained_bundle, tmp_path):
    from transformers import AutoTokenizer

    from serving.export import PROBES, _all_characters

    main(["export", "--model", str(trained_bundle), "--format", "hf", "--out", str(tmp_path), "--tasks", "topic"])
    exported = AutoTokenizer.from_pretrained(tmp_path / "topic")
    predictor = Predictor.from_bundle(trained_bundle, precision="fp32")
    settings = predictor.manifest.normalization
    # every code point of the common scripts, spaces and presentation forms, in the contexts the regexes look at
    points = [c for c in _all_characters() if ord(c) < 0x3100 or 0xFB00 <= ord(c) <= 0xFFFF]
    probes = (
        PROBES
        + RAW_TEXTS
        + [
            "".join(f"x @{c}y {c}@ab www.{c}q HTTP{c}s://z{c}w{c}{c}" for c in points[k : k + 500])
            for k in range(0, len(points), 500)
        ]
    )
    for text in probes:
        assert exported(text)["input_ids"] == predictor.tokenizer(normalize(text, settings))["input_ids"], text[:80]


def test_hf_export_folder_names_its_labels_and_documents_normalisation(trained_bundle, tmp_path):
    main(["export", "--model", str(trained_bundle), "--format", "hf", "--out", str(tmp_path), "--tasks", "topic"])
    config = json.loads((tmp_path / "topic" / "config.json").read_text(encoding="utf-8"))
    labels = list(Predictor.from_bundle(trained_bundle, precision="fp32").manifest.task("topic").labels)
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert config["label2id"] == {label: i for i, label in enumerate(labels)}
    assert (tmp_path / "topic" / "tokenizer.json").is_file()
    assert "normalisation" in (tmp_path / "topic" / "README.md").read_text(encoding="utf-8")
    assert not (tmp_path / "stance").exists()


def test_mean_pooling_export_refuses_to_load_without_remote_code(trained_bundle, tmp_path):
    from transformers import AutoModelForSequenceClassification

    main(["export", "--model", str(trained_bundle), "--format", "hf", "--out", str(tmp_path), "--tasks", "topic"])
    with pytest.raises(Exception):  # noqa: B017  (any loud failure will do, never CLS pooling in silence)
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "topic", trust_remote_code=False)


def test_a_mean_pooled_export_says_why_it_needs_remote_code_and_its_recipe_without_it_gives_the_scores(
    trained_bundle, tmp_path
):
    import re

    main(["export", "--model", str(trained_bundle), "--format", "hf", "--out", str(tmp_path)])
    for task, inputs in (
        ("topic", (RAW_TEXTS, None)),
        ("stance", ([t for _, t in RAW_PAIRS], [g for g, _ in RAW_PAIRS])),
    ):
        readme = (tmp_path / task / "README.md").read_text(encoding="utf-8")
        assert "Why `trust_remote_code=True`" in readme and "mean of all token vectors" in readme
        recipe = re.search(r"### Without remote code.*?```python\n(.*?)```", readme, re.S).group(1)
        namespace = {}
        exec(recipe.replace("PATH", str(tmp_path)), namespace)  # the README's own code, as a user would run it
        got = namespace["classify"](*inputs)
        labels = list(got[0])
        remote = pipeline_scores(
            tmp_path / task,
            RAW_TEXTS if task == "topic" else [{"text": g, "text_pair": t} for g, t in RAW_PAIRS],
            labels,
            remote=True,
        )
        np.testing.assert_allclose([[row[l] for l in labels] for row in got], remote, atol=TOLERANCE)


def test_export_refuses_when_it_cannot_bake_the_normalisation_exactly(trained_bundle, tmp_path, monkeypatch, capsys):
    import serving.normalize

    original = serving.normalize.normalize
    monkeypatch.setattr(serving.normalize, "normalize", lambda text, settings=None: original(text, settings).lower())
    assert main(["export", "--model", str(trained_bundle), "--format", "hf", "--out", str(tmp_path)]) == 2
    assert "differs from serving/normalize.py" in capsys.readouterr().err


def onnx_probabilities(folder: Path, kind: str, tokenizer, inputs) -> dict[str, np.ndarray]:
    import onnxruntime

    graph = json.loads((folder / "rasid_onnx.json").read_text(encoding="utf-8"))["graphs"][kind]
    session = onnxruntime.InferenceSession(str(folder / graph["file"]), providers=["CPUExecutionProvider"])
    encoded = tokenizer(*zip(*inputs), padding=True, truncation=True, return_tensors="np")
    outputs = session.run(graph["tasks"], {name: encoded[name] for name in graph["inputs"]})
    return {
        task: np.exp(o - o.max(1, keepdims=True)) / np.exp(o - o.max(1, keepdims=True)).sum(1, keepdims=True)
        for task, o in zip(graph["tasks"], outputs)
    }


def test_onnx_export_one_graph_per_input_kind_gives_the_bundles_scores(trained_bundle, tmp_path):
    predictor, expected, singles, pairs = reference(trained_bundle)
    assert main(["export", "--model", str(trained_bundle), "--format", "onnx", "--out", str(tmp_path)]) == 0
    got = {
        **onnx_probabilities(tmp_path, "single", predictor.tokenizer, singles),
        **onnx_probabilities(tmp_path, "pair", predictor.tokenizer, pairs),
    }
    assert set(got) == {"topic", "stance", "claim"}
    for task in got:
        np.testing.assert_allclose(got[task], np.asarray(expected[task]), atol=TOLERANCE)


def test_predictor_onnx_backend_answers_like_torch_without_loading_the_torch_model(
    trained_bundle, tmp_path, monkeypatch
):
    main(["export", "--model", str(trained_bundle), "--format", "onnx", "--out", str(tmp_path)])
    plain = Predictor.from_bundle(trained_bundle, precision="fp32")
    monkeypatch.setattr("serving.predictor.load_bundle", lambda *a, **k: pytest.fail("loaded the torch model"))
    onnx = Predictor.from_bundle(trained_bundle, onnx=tmp_path)
    assert onnx.backend == "onnxruntime"
    for mine, theirs in zip(onnx.predict(TEXTS, targets="لقاح كورونا"), plain.predict(TEXTS, targets="لقاح كورونا")):
        for task in theirs:
            assert mine[task]["label"] == theirs[task]["label"]
            assert mine[task]["score"] == pytest.approx(theirs[task]["score"], abs=TOLERANCE)


def test_onnx_int8_export_runs_and_gives_distributions(trained_bundle, tmp_path):
    predictor, _, singles, _ = reference(trained_bundle)
    main(["export", "--model", str(trained_bundle), "--format", "onnx", "--int8", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "rasid_onnx.json").read_text(encoding="utf-8"))["int8"] is True
    got = onnx_probabilities(tmp_path, "single", predictor.tokenizer, singles)["topic"]
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


def test_int8_export_of_hf_folders_is_refused(trained_bundle, tmp_path):
    assert main(["export", "--model", str(trained_bundle), "--format", "hf", "--int8", "--out", str(tmp_path)]) == 2


def test_a_bundle_trained_with_fewer_layers_exports_at_its_own_depth(tmp_path, tiny_base, sample_data):
    from transformers import AutoConfig

    from training.train import TrainConfig, train

    bundle = train(
        TrainConfig(
            data=[sample_data],
            out=tmp_path / "m",
            base=str(tiny_base),
            tasks=["topic"],
            epochs=1,
            batch_size=8,
            val_fraction=0.25,
            lr=1e-3,
            max_length=64,
            keep_layers=1,
        )
    )
    predictor = Predictor.from_bundle(bundle, precision="fp32")
    texts = [normalize(t, predictor.manifest.normalization) for t in TEXTS]
    expected = predictor.probabilities([(t,) for t in texts], ["topic"])["topic"].numpy()
    assert main(["export", "--model", str(bundle), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    assert AutoConfig.from_pretrained(tmp_path / "hf" / "topic", trust_remote_code=True).num_hidden_layers == 1
    got = pipeline_scores(tmp_path / "hf" / "topic", texts, predictor.manifest.task("topic").labels, remote=True)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)


def test_a_fusion_that_keeps_the_encoder_alone_is_folded_in_and_any_other_is_said_in_the_readme(
    bundle_copy, tmp_path, monkeypatch
):
    from serving.fusion import FusedTask, fuse

    predictor, expected, _, _ = reference(bundle_copy, RAW_TEXTS, RAW_PAIRS)
    # encoder weight 1 with a fusion temperature of 2 for topic; stance mixed with an n-gram model
    monkeypatch.setattr(
        "serving.bundle.load_ngram_models",
        lambda path: {"topic": FusedTask(None, 1.0, 2.0), "stance": FusedTask(None, 0.6, 1.0)},
    )
    assert main(["export", "--model", str(bundle_copy), "--format", "hf", "--out", str(tmp_path)]) == 0
    labels = predictor.manifest.task("topic").labels
    got = pipeline_scores(tmp_path / "topic", RAW_TEXTS, labels, remote=True)
    np.testing.assert_allclose(got, fuse(expected["topic"], expected["topic"], 1.0, 2.0), atol=TOLERANCE)
    assert "Not the bundle's whole answer" not in (tmp_path / "topic" / "README.md").read_text(encoding="utf-8")
    stance = (tmp_path / "stance" / "README.md").read_text(encoding="utf-8")
    assert "Not the bundle's whole answer" in stance and "`rasid evaluate --no-fusion`" in stance

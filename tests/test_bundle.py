"""The bundle format: what the manifest says, how loading fails, and that writing is atomic."""

import json

import pytest

from serving import __version__
from serving.bundle import FORMAT_VERSION, MANIFEST_FILE, Manifest, TaskSpec, load_bundle, read_manifest, save_bundle
from serving.errors import BundleError
from serving.predictor import Predictor


def test_manifest_json_holds_everything_a_bundle_needs(trained_bundle, sample_data, tiny_base):
    written = json.loads((trained_bundle / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert written["format"] == "rasid-bundle" and written["format_version"] == FORMAT_VERSION
    assert written["rasid_version"] == __version__
    assert [(t["name"], t["labels"], t["input"]) for t in written["tasks"]] == [
        ("claim", ["agree", "disagree", "discuss", "unrelated"], "pair"),
        ("stance", ["Against", "Favor", "None"], "pair"),
        ("topic", ["economy", "health", "politics", "sports"], "single"),
    ]
    assert all(t["temperature"] > 0 for t in written["tasks"])
    assert written["max_length"] == 64 and written["pooling"] == "mean" and written["base_model"] == str(tiny_base)
    assert written["normalization"]["strip_diacritics"] is True
    assert written["data"][0]["path"] == str(sample_data) and len(written["data"][0]["sha256"]) == 64
    assert written["training"]["epochs"] == 2 and written["training"]["batch_size"] == 8
    assert set(written["metrics"]["validation"]) == {"claim", "stance", "topic"}
    assert {"n", "accuracy", "macro_f1", "per_class", "ece"} <= set(written["metrics"]["validation"]["topic"])
    # Round trip: the parsed manifest writes back the same JSON.
    assert read_manifest(trained_bundle).to_dict() == written


def test_label_maps_are_derived_from_the_one_label_list():
    spec = TaskSpec("topic", ("economy", "sports"), "single")
    assert spec.label2id == {"economy": 0, "sports": 1} and spec.id2label == {0: "economy", 1: "sports"}
    with pytest.raises(BundleError, match="two distinct labels"):
        TaskSpec("topic", ("a", "a"), "single")
    with pytest.raises(BundleError, match="input kind 'triple'"):
        TaskSpec("topic", ("a", "b"), "triple")


def test_a_bundle_from_a_newer_rasid_is_refused_with_a_sentence(bundle_copy):
    path = bundle_copy / MANIFEST_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="written by a newer rasid.*upgrade rasid"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("missing", ["heads.safetensors", "model.safetensors", "tokenizer.json"])
def test_missing_files_are_named(bundle_copy, missing):
    (bundle_copy / missing).unlink()
    with pytest.raises(BundleError, match=f"missing {missing}"):
        load_bundle(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="has no rasid.json"):
        read_manifest(tmp_path)
    with pytest.raises(BundleError, match="not a bundle folder"):
        read_manifest(tmp_path / "nowhere")


def test_a_head_that_does_not_match_its_labels_is_reported(bundle_copy):
    path = bundle_copy / MANIFEST_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tasks"][2]["labels"].append("weather")
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="head of task 'topic' does not match its 5 labels"):
        load_bundle(bundle_copy)


def test_reloaded_bundle_gives_identical_predictions(trained_bundle, tmp_path):
    manifest, model, tokenizer = load_bundle(trained_bundle)
    first = Predictor.from_bundle(trained_bundle).predict(["فاز الفريق بالكأس", "ارتفع سعر النفط"], targets="لقاح")
    save_bundle(tmp_path / "again", model, tokenizer, manifest)
    again = Predictor.from_bundle(tmp_path / "again").predict(["فاز الفريق بالكأس", "ارتفع سعر النفط"], targets="لقاح")
    assert again == first


def test_rewriting_a_bundle_replaces_it_whole_and_leaves_no_temporary_folders(bundle_copy, monkeypatch):
    manifest, model, tokenizer = load_bundle(bundle_copy)
    manifest.metrics = {"note": "second"}
    save_bundle(bundle_copy, model, tokenizer, manifest)
    assert read_manifest(bundle_copy).metrics == {"note": "second"}
    assert sorted(p.name for p in bundle_copy.parent.iterdir()) == ["bundle"]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", crash)
    with pytest.raises(OSError):
        save_bundle(bundle_copy, model, tokenizer, Manifest(tasks=manifest.tasks, max_length=8, base_model="x"))
    assert read_manifest(bundle_copy).metrics == {"note": "second"}  # the old bundle is intact
    assert sorted(p.name for p in bundle_copy.parent.iterdir()) == ["bundle"]

"""rasid train --init-from BUNDLE: continue a bundle on new data; the tasks it does not train keep their heads."""

import json

import pytest
from safetensors.torch import load_file

from serving.bundle import read_manifest
from serving.errors import DataError, RasidError
from serving.predictor import Predictor
from tests.conftest import sample_rows, write_jsonl
from training.train import TrainConfig, train


def continue_config(bundle, data, out, **overrides) -> TrainConfig:
    options = dict(data=[data], out=out, init_from=bundle, epochs=1, batch_size=8, val_fraction=0.25, lr=1e-3)
    return TrainConfig(**{**options, **overrides})


@pytest.fixture(scope="module")
def stance_rows(tmp_path_factory):
    rows = [row for row in sample_rows() if "stance" in row]
    return write_jsonl(tmp_path_factory.mktemp("stance") / "stance.jsonl", rows)


@pytest.fixture(scope="module")
def continued(trained_bundle, stance_rows, sample_data, tmp_path_factory):
    """The tiny bundle, trained on for one epoch on its stance rows alone, validated on all its tasks."""
    out = tmp_path_factory.mktemp("continued") / "m"
    return train(continue_config(trained_bundle, stance_rows, out, val_data=[sample_data]))


def test_the_untrained_tasks_keep_their_heads_and_labels(trained_bundle, continued):
    before, after = read_manifest(trained_bundle), read_manifest(continued)
    assert [t.name for t in after.tasks] == [t.name for t in before.tasks]
    heads_before, heads_after = (
        load_file(str(trained_bundle / "heads.safetensors")),
        load_file(str(continued / "heads.safetensors")),
    )
    for task in ("topic", "claim"):
        assert (after.task(task).labels, after.task(task).input) == (before.task(task).labels, before.task(task).input)
        assert heads_after[f"{task}.weight"].equal(heads_before[f"{task}.weight"])
    assert not heads_after["stance.weight"].equal(heads_before["stance.weight"])


def test_every_task_is_measured_again_because_the_encoder_moved_under_all_of_them(continued):
    assert set(read_manifest(continued).metrics["validation"]) == {"topic", "stance", "claim"}


def test_the_encoder_starts_from_the_bundle_and_moves(trained_bundle, continued):
    encoder_before = load_file(str(trained_bundle / "model.safetensors"))
    encoder_after = load_file(str(continued / "model.safetensors"))
    assert encoder_before.keys() == encoder_after.keys()
    assert any(not encoder_after[k].equal(encoder_before[k]) for k in encoder_before)
    manifest = read_manifest(continued)
    assert manifest.base_model == read_manifest(trained_bundle).base_model
    assert manifest.training["init_from"] == str(trained_bundle)


def test_the_continued_bundle_answers_every_task_and_remembers_the_earlier_targets(trained_bundle, continued):
    predictor = Predictor.from_bundle(continued)
    assert predictor.task_names == Predictor.from_bundle(trained_bundle).task_names
    before, after = read_manifest(trained_bundle).targets, read_manifest(continued).targets
    assert after["claim"] == before["claim"]  # not trained: as it was
    assert after["stance"]["rows"] > before["stance"]["rows"]  # trained again: both trainings counted


def test_a_label_the_bundle_has_no_slot_for_is_refused(trained_bundle, tmp_path):
    rows = [{"text": "نص جديد عن الطقس", "topic": "weather"}, {"text": "نص آخر عن الاقتصاد", "topic": "economy"}]
    data = write_jsonl(tmp_path / "new.jsonl", rows)
    with pytest.raises(DataError, match=r"label\(s\) \['weather'\] are not among the bundle's"):
        train(continue_config(trained_bundle, data, tmp_path / "m", tasks=["topic"], val_data=[data]))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [({"base": "some/encoder"}, "--init-from and --base exclude each other"), ({}, "are the same folder")],
)
def test_conflicting_paths_are_refused(bundle_copy, stance_rows, overrides, message):
    out = overrides.pop("out", bundle_copy)
    with pytest.raises(RasidError, match=message):
        train(continue_config(bundle_copy, stance_rows, out, **overrides))
    assert json.loads((bundle_copy / "rasid.json").read_text())["tasks"]  # the bundle is untouched

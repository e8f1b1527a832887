"""The fast path: per-row int8 only for a bundle whose own labelled data showed it costing at most 0.5 macro-F1
points on every task (recorded in its manifest by `rasid train` or `rasid check-int8`), fp32 otherwise."""

import json

import pytest

from serving.bundle import BundleError, read_manifest, write_manifest
from serving.precision import MAX_INT8_COST, fast_precision
from serving.predictor import Predictor
from training.cli import main


@pytest.fixture(autouse=True)
def fast_int8_cpu(monkeypatch):
    """These tests are about the bundle's record; the CPU's part is tested on its own below."""
    monkeypatch.setattr("serving.precision.int8_is_fast", lambda: True)


def record(bundle, costs: dict | None) -> None:
    manifest = json.loads((bundle / "rasid.json").read_text(encoding="utf-8"))
    manifest["metrics"].pop("int8_cost", None)
    if costs is not None:
        manifest["metrics"]["int8_cost"] = {"macro_f1_points": costs, "rows": 10, "data": ["v.jsonl"]}
    (bundle / "rasid.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    "costs, fast",
    [
        ({"topic": 0.1, "stance": MAX_INT8_COST, "claim": -0.3}, "int8"),
        ({"topic": 0.1, "stance": 0.9, "claim": 0.0}, "fp32"),  # one task over the limit is enough
        ({"topic": 0.1, "stance": 0.2}, "fp32"),  # claim never measured: no evidence for it
        (None, "fp32"),  # a bundle from before the measurement
    ],
)
def test_the_fast_path_follows_the_int8_cost_recorded_in_the_bundle(bundle_copy, costs, fast):
    record(bundle_copy, costs)
    assert fast_precision(read_manifest(bundle_copy)) == fast
    assert Predictor.from_bundle(bundle_copy).backend == f"torch-{fast}"


def test_a_cpu_without_fast_int8_stays_fp32_on_the_fast_path_but_int8_can_still_be_asked_for(bundle_copy, monkeypatch):
    monkeypatch.setattr("serving.precision.int8_is_fast", lambda: False)
    record(bundle_copy, {"topic": 0.0, "stance": 0.0, "claim": 0.0})
    assert fast_precision(read_manifest(bundle_copy)) == "fp32"
    assert Predictor.from_bundle(bundle_copy).backend == "torch-fp32"
    assert Predictor.from_bundle(bundle_copy, precision="int8").backend == "torch-int8"


def test_the_fast_path_can_be_turned_off_and_a_precision_asked_for_wins(bundle_copy):
    record(bundle_copy, {"topic": 0.0, "stance": 0.0, "claim": 0.0})
    assert Predictor.from_bundle(bundle_copy).backend == "torch-int8"
    assert Predictor.from_bundle(bundle_copy, precision="fp32").backend == "torch-fp32"
    record(bundle_copy, {"topic": 3.0, "stance": 0.0, "claim": 0.0})
    assert Predictor.from_bundle(bundle_copy, precision="int8").backend == "torch-int8"


def test_an_encoder_serving_encoder_cannot_run_stays_fp32_on_the_fast_path(bundle_copy):
    from serving.bundle import load_bundle

    record(bundle_copy, {"topic": 0.0, "stance": 0.0, "claim": 0.0})
    # load_bundle without an inference dtype gives the transformers model, as for XLM-R or DistilBERT bases:
    # its int8 would be torch's per-tensor dynamic int8, far costlier than the per-row int8 that was measured
    assert Predictor(*load_bundle(bundle_copy)).backend == "torch-fp32"
    assert Predictor(*load_bundle(bundle_copy), precision="int8").backend == "torch-int8"


def test_training_records_what_int8_costs_on_the_validation_rows(trained_bundle):
    recorded = read_manifest(trained_bundle).metrics["int8_cost"]
    assert set(recorded["macro_f1_points"]) == {"topic", "stance", "claim"}
    assert all(-100 <= cost <= 100 for cost in recorded["macro_f1_points"].values())
    assert recorded["rows"] > 0 and recorded["data"] == ["validation split (0.25 of the data)"]


def test_training_on_a_cpu_without_fast_int8_skips_the_measurement_and_serves_fp32(
    tmp_path, tiny_base, sample_data, monkeypatch
):
    from tests.conftest import tiny_config
    from training.train import train

    monkeypatch.setattr("serving.precision.int8_is_fast", lambda: False)
    out = train(tiny_config(sample_data, tmp_path / "m", tiny_base, epochs=1))
    assert "int8_cost" not in read_manifest(out).metrics
    assert Predictor.from_bundle(out).backend == "torch-fp32"


def test_check_int8_measures_a_bundle_on_given_data_and_records_it(bundle_copy, sample_data, capsys):
    record(bundle_copy, None)
    assert main(["check-int8", "--model", str(bundle_copy), "--data", str(sample_data)]) == 0
    recorded = read_manifest(bundle_copy).metrics["int8_cost"]
    assert recorded["data"] == [str(sample_data)] and recorded["rows"] > 0
    out = capsys.readouterr().out
    assert "topic: int8 costs" in out and f"fast path of {bundle_copy}: " in out
    assert f"fast path of {bundle_copy}: {fast_precision(read_manifest(bundle_copy))}" in out


def test_check_int8_names_labels_the_bundle_does_not_know_and_keeps_the_earlier_record(bundle_copy, tmp_path, capsys):
    from tests.conftest import write_jsonl

    record(bundle_copy, {"topic": 0.1, "stance": 0.2, "claim": 0.3})
    data = write_jsonl(tmp_path / "v.jsonl", [{"text": "نص", "topic": "weather"}])
    assert main(["check-int8", "--model", str(bundle_copy), "--data", str(data)]) == 2
    assert "label 'weather'" in capsys.readouterr().err
    assert read_manifest(bundle_copy).metrics["int8_cost"]["macro_f1_points"] == {
        "topic": 0.1,
        "stance": 0.2,
        "claim": 0.3,
    }


def test_rewriting_a_manifest_needs_a_complete_bundle(bundle_copy, tmp_path):
    manifest = read_manifest(bundle_copy)
    with pytest.raises(BundleError, match="not a bundle folder"):
        write_manifest(tmp_path / "missing", manifest)
    manifest.metrics["note"] = "kept"
    write_manifest(bundle_copy, manifest)
    assert read_manifest(bundle_copy).metrics["note"] == "kept"
    assert not list(bundle_copy.glob(".rasid.json*"))  # no temporary left behind


def tiny_training(sample_data, out, tiny_base, **options):
    from training.train import TrainConfig, train

    return train(
        TrainConfig(
            data=[sample_data],
            out=out,
            base=str(tiny_base),
            tasks=["topic"],
            epochs=1,
            batch_size=8,
            val_fraction=0.25,
            lr=1e-3,
            max_length=64,
            **options,
        )
    )


def test_training_can_skip_the_int8_check_and_the_bundle_then_runs_fp32(tmp_path, tiny_base, sample_data):
    bundle = tiny_training(sample_data, tmp_path / "m", tiny_base, int8_check=False)
    assert "int8_cost" not in read_manifest(bundle).metrics
    assert Predictor.from_bundle(bundle).backend == "torch-fp32"


def test_a_failed_int8_check_keeps_the_trained_bundle_on_fp32(tmp_path, tiny_base, sample_data, monkeypatch, caplog):
    import training.int8_cost

    def broken(*args, **kwargs):
        raise RuntimeError("no int8 kernels on this CPU")

    monkeypatch.setattr(training.int8_cost, "record_int8_cost", broken)
    bundle = tiny_training(sample_data, tmp_path / "m", tiny_base)
    assert "int8 cost not measured (no int8 kernels on this CPU)" in caplog.text
    assert Predictor.from_bundle(bundle).backend == "torch-fp32"


def test_check_int8_on_data_for_some_tasks_only_says_the_others_were_not_measured(bundle_copy, tmp_path, capsys):
    from tests.conftest import write_jsonl
    from tests.samples import TOPIC

    data = write_jsonl(tmp_path / "v.jsonl", [{"text": text, "topic": label} for text, label in TOPIC])
    assert main(["check-int8", "--model", str(bundle_copy), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "not measured, no labelled rows in the data: claim, stance" in out  # in the manifest's task order
    assert f"fast path of {bundle_copy}: fp32" in out

"""Targets the model knows: the bundle lists each pair task's training targets (or says the task is open), and
every answer of a closed pair task says whether its target was seen; serving and predict can abstain on unseen
targets. Bundles from before the inventory still load."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from serving.abstention import UNCERTAIN
from serving.bundle import MANIFEST_FILE, OPEN_ABOVE, TaskSpec, read_manifest, target_inventory
from serving.normalize import NormalizationSettings
from serving.predictor import Predictor
from tests.conftest import write_jsonl
from training.cli import main

UNSEEN = "قسد"  # a target no sample row names
STANCE = TaskSpec("stance", ("Against", "Favor", "None"), "pair")
CLAIM = TaskSpec("claim", ("agree", "disagree"), "pair")
TOPIC = TaskSpec("topic", ("a", "b"), "single")


def row(task: str, target: str):
    return SimpleNamespace(labels={task: "x"}, target=target)


def seen_target(bundle) -> str:
    """A stance target of the tiny bundle's training rows (the validation split decides which remain)."""
    return next(iter(read_manifest(bundle).targets["stance"]["counts"]))


def test_a_few_targets_make_a_closed_task_with_counts_many_make_it_open():
    rows = [row("stance", "Covid Vaccine")] * 3 + [row("stance", "covid  vaccine")] + [row("stance", "تمكين المرأة")]
    rows += [row("claim", f"ادعاء رقم {k}") for k in range(OPEN_ABOVE + 1)]
    inventory = target_inventory(rows, [STANCE, CLAIM, TOPIC], NormalizationSettings())
    # case and spacing variants are one target, counted under the first spelling seen
    assert inventory["stance"] == {
        "open": False,
        "rows": 5,
        "distinct": 2,
        "counts": {"Covid Vaccine": 4, "تمكين المرأة": 1},
    }
    assert inventory["claim"] == {"open": True, "rows": OPEN_ABOVE + 1, "distinct": OPEN_ABOVE + 1}
    assert "topic" not in inventory  # single-input tasks have no target


def test_a_small_set_of_mostly_unique_targets_is_open_too():
    claims = [row("claim", f"ادعاء رقم {k}") for k in range(12)] + [row("claim", "ادعاء رقم 0")]
    assert target_inventory(claims, [CLAIM], NormalizationSettings())["claim"]["open"] is True
    repeated = [row("claim", f"ادعاء رقم {k}") for k in range(12) for _ in range(3)]
    assert target_inventory(repeated, [CLAIM], NormalizationSettings())["claim"]["open"] is False


def test_training_records_the_targets_of_each_pair_task(trained_bundle):
    targets = read_manifest(trained_bundle).targets
    assert set(targets) == {"stance", "claim"}
    # the samples name three stance targets and two claims, each in several rows: both tasks are closed
    assert targets["stance"]["open"] is False
    assert set(targets["stance"]["counts"]) <= {"لقاح كورونا", "تمكين المرأة", "التحول الرقمي"}
    assert sum(targets["stance"]["counts"].values()) == targets["stance"]["rows"] > 0
    assert targets["stance"]["distinct"] == len(targets["stance"]["counts"])


def test_answers_say_whether_the_target_was_seen_after_normalisation_and_ignoring_case(trained_bundle):
    predictor = Predictor.from_bundle(trained_bundle, precision="fp32")
    known = seen_target(trained_bundle)
    variant = "  " + known[:1] + "\u0640" + known[1:] + "\u064e "  # tatweel, a diacritic, spaces
    text = "أخذت اللقاح وأنصح الجميع به"
    seen, spelt, unseen = predictor.predict([text] * 3, targets=[known, variant, UNSEEN])
    assert seen["stance"]["target_seen"] is True and spelt["stance"]["target_seen"] is True
    assert unseen["stance"]["target_seen"] is False
    assert "target_seen" not in unseen["topic"]  # a single-input task has no target


def test_target_matching_ignores_case(bundle_copy):
    path = bundle_copy / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["targets"]["stance"]["counts"] = {"Covid Vaccine": 3}  # as Mawqif names it
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    predictor = Predictor.from_bundle(bundle_copy, precision="fp32")
    answers = predictor.predict(["نص"] * 3, targets=["covid vaccine", "COVID  Vaccine", "Covid Vaccines"])
    assert [a["stance"]["target_seen"] for a in answers] == [True, True, False]


def test_abstaining_on_unseen_targets_answers_uncertain_and_keeps_the_scores(trained_bundle):
    predictor = Predictor.from_bundle(trained_bundle, precision="fp32")
    text = "أخذت اللقاح وأنصح الجميع به"
    plain = predictor.predict(text, targets=UNSEEN)
    abstained = predictor.predict(text, targets=UNSEEN, abstain_unseen_targets=True)
    assert abstained["stance"]["label"] == UNCERTAIN
    assert abstained["stance"]["scores"] == plain["stance"]["scores"] and abstained["stance"]["target_seen"] is False
    assert abstained["topic"] == plain["topic"]  # no target, nothing to abstain on
    known = predictor.predict(text, targets=seen_target(trained_bundle), abstain_unseen_targets=True)
    assert known["stance"]["label"] != UNCERTAIN


def test_an_open_task_says_nothing_about_its_targets(bundle_copy):
    path = bundle_copy / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["targets"]["claim"] = {"open": True, "rows": 8, "distinct": 2}
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    answer = Predictor.from_bundle(bundle_copy, precision="fp32").predict(
        "نص", targets=UNSEEN, abstain_unseen_targets=True
    )
    assert "target_seen" not in answer["claim"] and answer["claim"]["label"] != UNCERTAIN
    assert answer["stance"]["target_seen"] is False


def test_a_bundle_from_before_the_target_inventory_still_loads_and_answers_without_target_seen(bundle_copy):
    path = bundle_copy / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["targets"]
    manifest["format_version"] = 1
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    answer = Predictor.from_bundle(bundle_copy, precision="fp32").predict(
        "نص", targets=UNSEEN, abstain_unseen_targets=True
    )
    assert all("target_seen" not in a and a["label"] != UNCERTAIN for a in answer.values())


def test_rasid_predict_writes_target_seen_and_can_abstain_on_unseen_targets(trained_bundle, tmp_path):
    known = seen_target(trained_bundle)
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "a", "text": "أخذت اللقاح", "target": known}, {"id": "b", "text": "أخذت اللقاح", "target": UNSEEN}],
    )
    for flags, out in (([], tmp_path / "plain.jsonl"), (["--abstain-unseen-targets"], tmp_path / "abstain.jsonl")):
        assert (
            main(
                [
                    "predict",
                    "--model",
                    str(trained_bundle),
                    "--input",
                    str(source),
                    "--output",
                    str(out),
                    "--tasks",
                    "stance",
                    *flags,
                ]
            )
            == 0
        )
    plain, abstained = (
        [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
        for p in (tmp_path / "plain.jsonl", tmp_path / "abstain.jsonl")
    )
    assert [line["predictions"]["stance"]["target_seen"] for line in plain] == [True, False]
    assert plain[1]["predictions"]["stance"]["label"] != UNCERTAIN
    assert abstained[1]["predictions"]["stance"]["label"] == UNCERTAIN
    assert abstained[1]["predictions"]["stance"]["scores"] == plain[1]["predictions"]["stance"]["scores"]
    assert abstained[0]["predictions"]["stance"] == plain[0]["predictions"]["stance"]


def test_document_verdicts_say_whether_the_target_was_seen(trained_bundle):
    from serving.documents import analyze_document
    from tests.samples import ARTICLE

    predictor = Predictor.from_bundle(trained_bundle, precision="fp32")
    result = analyze_document(predictor, ARTICLE, UNSEEN, abstain_unseen_targets=True)
    assert result["predictions"]["stance"]["target_seen"] is False
    assert result["predictions"]["stance"]["label"] == UNCERTAIN
    assert all(p["predictions"]["stance"]["label"] == UNCERTAIN for p in result["paragraphs"])
    assert result["predictions"]["topic"]["label"] != UNCERTAIN


# --- over HTTP ------------------------------------------------------------------------------------------------


def _client(bundle, **settings):
    from fastapi.testclient import TestClient

    from serving.api.main import create_app
    from serving.api.settings import Settings

    return TestClient(create_app(Settings(model_dir=bundle, **settings)))


def _wait_ready(client) -> None:
    for _ in range(600):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"never ready: {client.get('/readyz').json()}")


@pytest.mark.parametrize("abstain", [False, True])
def test_http_answers_say_target_seen_and_the_server_can_abstain_on_unseen_targets(trained_bundle, abstain):
    from tests.samples import ARTICLE

    with _client(trained_bundle, abstain_unseen_targets=abstain) as client:
        _wait_ready(client)
        known = seen_target(trained_bundle)
        one = client.post("/v1/classify", json={"text": "أخذت اللقاح", "target": UNSEEN}).json()["predictions"]
        assert one["stance"]["target_seen"] is False and one["topic"]["target_seen"] is None
        assert (one["stance"]["label"] == UNCERTAIN) is abstain
        batch = client.post(
            "/v1/classify/batch",
            json={"inputs": [{"text": "أخذت اللقاح", "target": known}, {"text": "أخذت اللقاح", "target": UNSEEN}]},
        )
        stance = [r["predictions"]["stance"] for r in batch.json()["results"]]
        assert [s["target_seen"] for s in stance] == [True, False]
        assert stance[0]["label"] != UNCERTAIN and (stance[1]["label"] == UNCERTAIN) is abstain
        article = client.post("/v1/analyze", json={"text": ARTICLE, "target": UNSEEN}).json()
        assert article["predictions"]["stance"]["target_seen"] is False
        assert (article["predictions"]["stance"]["label"] == UNCERTAIN) is abstain
        tasks = {t["name"]: t for t in client.get("/v1/model").json()["tasks"]}
        assert tasks["stance"]["open_targets"] is False and known in tasks["stance"]["targets"]
        assert tasks["topic"]["targets"] is None


def test_rasid_serve_takes_the_unseen_target_flag_and_the_environment(monkeypatch):
    import argparse

    from serving import serve
    from serving.api.settings import Settings

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", "m", "--abstain-unseen-targets"])
    assert args.abstain_unseen_targets is True
    assert parser.parse_args(["serve", "--model", "m"]).abstain_unseen_targets is None  # the environment decides
    monkeypatch.setenv("RASID_ABSTAIN_UNSEEN_TARGETS", "true")
    assert Settings().abstain_unseen_targets is True

"""rasid evaluate, predict and baseline, in-process through the CLI, on the tiny trained bundle."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sample_rows, write_jsonl
from tests.samples import ARTICLE
from training.cli import main


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_evaluate_writes_parseable_report(trained_bundle, sample_data, tmp_path, capsys):
    report_dir = tmp_path / "report"
    assert (
        main(["evaluate", "--model", str(trained_bundle), "--data", str(sample_data), "--report", str(report_dir)]) == 0
    )
    out = capsys.readouterr().out
    assert "macro-F1" in out and "StanceEval 2024 score" in out and "لقاح كورونا" in out
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    tasks = report["models"]["rasid"]["tasks"]
    assert set(tasks) == {"topic", "stance", "claim"}
    assert tasks["topic"]["n"] == 24 and tasks["stance"]["n"] == 12 and tasks["claim"]["n"] == 8
    for scores in tasks.values():
        assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["macro_f1"] <= 1 and 0 <= scores["ece"] <= 1
        assert sum(c["support"] for c in scores["per_class"].values()) == scores["n"]
        assert sum(map(sum, scores["confusion"]["counts"])) == scores["n"]
    stance = tasks["stance"]["stanceeval"]
    assert set(stance["per_target"]) == {"لقاح كورونا", "تمكين المرأة", "التحول الرقمي"}
    assert stance["score"] == pytest.approx(sum(v["score"] for v in stance["per_target"].values()) / 3)
    assert "stanceeval" not in tasks["topic"]
    markdown = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "| task | model |" in markdown and "confusion-topic.png" in markdown
    for task in tasks:
        png = report_dir / f"confusion-{task}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_risk_coverage_by_hand():
    from training.report import risk_coverage

    gold = ["a", "a", "b", "b", "a"]
    predicted = ["a", "b", "b", "a", "(no verdict)"]
    confidences = [0.9, 0.4, 0.7, 0.6, None]  # the last row has no answer: never kept
    rows = {r["threshold"]: r for r in risk_coverage(gold, predicted, confidences, ["a", "b"], (0.3, 0.65, 0.95))}
    assert rows[0.3] == {"threshold": 0.3, "answered": 4, "coverage": 0.8, "accuracy": 0.5, "macro_f1": 0.5}
    assert rows[0.65] == {"threshold": 0.65, "answered": 2, "coverage": 0.4, "accuracy": 1.0, "macro_f1": 1.0}
    assert rows[0.95] == {"threshold": 0.95, "answered": 0, "coverage": 0.0, "accuracy": None, "macro_f1": None}


def test_the_report_has_a_risk_coverage_table_and_plot_per_task(trained_bundle, sample_data, tmp_path, capsys):
    from training.report import RISK_COVERAGE_THRESHOLDS

    report_dir = tmp_path / "report"
    assert (
        main(["evaluate", "--model", str(trained_bundle), "--data", str(sample_data), "--report", str(report_dir)]) == 0
    )
    assert "risk-coverage (percent):" in capsys.readouterr().out
    tasks = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))["models"]["rasid"]["tasks"]
    markdown = (report_dir / "report.md").read_text(encoding="utf-8")
    for task, scores in tasks.items():
        table = scores["risk_coverage"]
        assert (
            [r["threshold"] for r in table]
            == list(RISK_COVERAGE_THRESHOLDS)
            == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
        )
        coverage = [r["coverage"] for r in table]
        assert coverage == sorted(coverage, reverse=True)  # a higher threshold never keeps more
        assert all(r["answered"] == round(r["coverage"] * scores["n"]) for r in table)
        assert (report_dir / f"risk-coverage-{task}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"risk-coverage-{task}.png" in markdown
    assert "| abstain below | answered | coverage | accuracy (answered) | macro-F1 (answered) |" in markdown


def test_evaluate_abstain_below_scores_uncertain_answers_as_wrong_and_reports_what_was_kept(
    trained_bundle, tmp_path, capsys
):
    from serving.predictor import Predictor
    from tests.samples import TOPIC

    data = write_jsonl(tmp_path / "topic.jsonl", [{"text": t, "topic": label} for t, label in TOPIC])
    answers = Predictor.from_bundle(trained_bundle).predict([t for t, _ in TOPIC], tasks=["topic"])
    scores = sorted(a["topic"]["score"] for a in answers)
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # keeps the surer half
    kept = [a["topic"]["label"] == label for a, (_, label) in zip(answers, TOPIC) if a["topic"]["score"] >= threshold]
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained_bundle),
                "--data",
                str(data),
                "--abstain-below",
                str(threshold),
                "--report",
                str(tmp_path / "report"),
            ]
        )
        == 0
    )
    assert f"abstaining below {threshold:g}: {len(kept)} of {len(TOPIC)} answered" in capsys.readouterr().out
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["abstain_below"] == threshold
    topic = report["models"]["rasid"]["tasks"]["topic"]
    abstention = topic["abstention"]
    assert abstention["answered"] == len(kept) and abstention["uncertain"] == len(TOPIC) - len(kept)
    assert abstention["coverage"] == pytest.approx(len(kept) / len(TOPIC))
    assert abstention["accuracy"] == pytest.approx(sum(kept) / len(kept))  # of the answered rows
    assert topic["accuracy"] == pytest.approx(sum(kept) / len(TOPIC))  # uncertain answers count as wrong
    assert sum(
        topic["confusion"]["counts"][k][topic["confusion"]["columns"].index("uncertain")]
        for k in range(len(topic["confusion"]["labels"]))
    ) == len(TOPIC) - len(kept)


def test_evaluate_refuses_a_threshold_outside_zero_to_one(trained_bundle, sample_data, capsys):
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(sample_data), "--abstain-below", "0"]) == 2
    assert "--abstain-below must be in (0, 1]" in capsys.readouterr().err


def test_evaluate_scores_the_precision_asked_and_says_which_ran(trained_bundle, sample_data, tmp_path, capsys):
    for precision in ("fp32", "int8"):
        assert (
            main(
                [
                    "evaluate",
                    "--model",
                    str(trained_bundle),
                    "--data",
                    str(sample_data),
                    "--tasks",
                    "topic",
                    "--precision",
                    precision,
                    "--report",
                    str(tmp_path / precision),
                ]
            )
            == 0
        )
    capsys.readouterr()
    rasid = {
        p: json.loads((tmp_path / p / "report.json").read_text(encoding="utf-8"))["models"]["rasid"]
        for p in ("fp32", "int8")
    }
    assert rasid["fp32"]["description"].endswith("run on torch-fp32")
    assert rasid["int8"]["description"].endswith("run on torch-int8")
    assert rasid["int8"]["tasks"]["topic"]["n"] == rasid["fp32"]["tasks"]["topic"]["n"] == 24


def test_the_command_line_and_the_service_offer_exactly_the_predictors_precisions():
    from typing import get_args

    from serving.api.settings import Settings
    from serving.precision import PRECISIONS
    from training.cli import build_parser

    required = {"predict": ["--input", "i", "--output", "o.jsonl"], "evaluate": ["--data", "d"], "serve": []}
    parser = build_parser()
    for name, options in required.items():
        argv = [name, "--model", "m", *options]
        assert parser.parse_args(argv).precision == (None if name == "serve" else "auto")  # serve: the env decides
        assert parser.parse_args([*argv, "--no-fast"]).precision == "fp32"
        for precision in PRECISIONS:
            assert parser.parse_args([*argv, "--precision", precision]).precision == precision
    assert get_args(Settings.model_fields["precision"].annotation) == PRECISIONS


def test_rasid_fast_false_is_an_alias_of_fp32_and_an_explicit_precision_wins(monkeypatch):
    from serving.api.settings import Settings

    assert Settings().precision == "auto"
    monkeypatch.setenv("RASID_FAST", "false")
    assert Settings().precision == "fp32"
    monkeypatch.setenv("RASID_PRECISION", "int8")
    assert Settings().precision == "int8"


def test_evaluate_with_baseline_side_by_side(trained_bundle, sample_data, tmp_path, capsys):
    report_dir = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained_bundle),
                "--data",
                str(sample_data),
                "--tasks",
                "topic,stance",
                "--baseline",
                "--train",
                str(sample_data),
                "--report",
                str(report_dir),
            ]
        )
        == 0
    )
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert set(report["models"]) == {"rasid", "baseline"}
    assert set(report["models"]["baseline"]["tasks"]) == {"topic", "stance"}
    assert report["models"]["baseline"]["tasks"]["topic"]["accuracy"] == 1.0  # trained on the same rows
    assert (report_dir / "confusion-topic-baseline.png").is_file()
    assert "baseline" in capsys.readouterr().out


def test_baseline_needs_train_files(trained_bundle, sample_data, capsys):
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(sample_data), "--baseline"]) == 2
    assert "--train" in capsys.readouterr().err


def test_unknown_label_is_an_error_naming_it(trained_bundle, tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"text": "فاز المنتخب في المباراة", "topic": "sports"},
            {"text": "نص عن الطقس والمطر", "topic": "weather"},
            {"text": "نص ثالث عن الفن", "topic": "ECONOMY"},  # matched case-insensitively: not an error
        ],
    )
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "'weather'" in err and f"{data}:2" in err and "ECONOMY" not in err


def test_case_insensitive_labels_are_accepted(trained_bundle, tmp_path):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [{"text": "فاز المنتخب في المباراة", "topic": "SPORTS"}, {"text": "ارتفع سعر النفط", "topic": "Economy"}],
    )
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(data)]) == 0


def test_bad_rows_are_reported_by_file_and_line(trained_bundle, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text(
        '{"text": "فاز المنتخب", "topic": "sports"}\n{not json\n{"topic": "sports"}\n'
        '{"text": "أكد المصدر الخبر", "claim": "agree"}\n',
        encoding="utf-8",
    )
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2" in err and f"{data}:3" in err
    # With --skip-bad-rows: lines 2-3 are dropped, and line 4 (claim without a target) too.
    assert main(["evaluate", "--model", str(trained_bundle), "--data", str(data), "--skip-bad-rows"]) == 0
    assert "n=1" in capsys.readouterr().out


def test_evaluate_documents(trained_bundle, tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "articles.jsonl",
        [
            {"text": ARTICLE, "target": "خطة لدعم الشركات", "claim": "agree", "topic": "economy"},
            {"text": "شارك على فيسبوك\nتابعونا على تويتر", "target": "ادعاء", "claim": "unrelated"},
        ],
    )
    report_dir = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained_bundle),
                "--data",
                str(data),
                "--documents",
                "--report",
                str(report_dir),
            ]
        )
        == 0
    )
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert report["documents"] is True
    claim = report["models"]["rasid"]["tasks"]["claim"]
    assert claim["n"] == 2 and claim["no_verdict"] == 1  # the all-boilerplate article has no verdict
    assert "(no verdict)" in claim["confusion"]["columns"]


def test_predict_output_shape(trained_bundle, tmp_path):
    rows = [
        {"id": "a1", "text": "فاز المنتخب الوطني في المباراة", "target": "لقاح كورونا"},
        {"id": 7, "text": "ارتفعت أسعار النفط"},
        {"text": "نص بلا معرف", "target": "تمكين المرأة", "topic": "politics"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out" / "predictions.jsonl"
    assert main(["predict", "--model", str(trained_bundle), "--input", str(source), "--output", str(out)]) == 0
    lines = _read_jsonl(out)
    assert len(lines) == 3
    assert lines[0]["id"] == "a1" and lines[1]["id"] == 7 and "id" not in lines[2]
    assert set(lines[0]["predictions"]) == {"topic", "stance", "claim"} and lines[0]["skipped_tasks"] == []
    assert set(lines[1]["predictions"]) == {"topic"} and sorted(lines[1]["skipped_tasks"]) == ["claim", "stance"]
    for line in lines:
        assert isinstance(line["truncated"], bool)
        for answer in line["predictions"].values():
            assert answer["label"] in answer["scores"] and answer["score"] == max(answer["scores"].values())
            assert sum(answer["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert [p.name for p in out.parent.iterdir()] == ["predictions.jsonl"]  # no temporary left behind


def test_predict_csv_with_tasks_and_abstention(trained_bundle, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,فاز المنتخب الوطني في المباراة\n2,ارتفعت أسعار النفط\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
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
                "topic",
                "--abstain-below",
                "1.0",
            ]
        )
        == 0
    )
    lines = _read_jsonl(out)
    assert [l["id"] for l in lines] == ["1", "2"]
    assert all(set(l["predictions"]) == {"topic"} for l in lines)
    assert all(l["predictions"]["topic"]["label"] == "uncertain" for l in lines)  # nothing is 100% sure


def test_predict_documents(trained_bundle, tmp_path):
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "doc", "text": ARTICLE, "target": "خطة لدعم الشركات"}, {"id": "empty", "text": "جميع الحقوق محفوظة"}],
    )
    out = tmp_path / "out.jsonl"
    assert (
        main(["predict", "--model", str(trained_bundle), "--input", str(source), "--output", str(out), "--documents"])
        == 0
    )
    doc, empty = _read_jsonl(out)
    assert set(doc["predictions"]) == {"topic", "stance", "claim"}
    assert doc["predictions"]["claim"]["rule"] == "most-confident-non-neutral"
    assert doc["predictions"]["topic"]["rule"] == "length-weighted-mean"
    assert len(doc["paragraphs"]) == 2 and len(doc["skipped"]) == 4
    for p in doc["paragraphs"] + doc["skipped"]:
        assert ARTICLE[p["start"] : p["end"]] == p["text"]
    assert empty["empty"] is True and empty["predictions"] == {} and len(empty["skipped"]) == 1


def test_predict_bad_rows(trained_bundle, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "نص أول"}\n{"text": ""}\n{"text": "نص ثالث"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(trained_bundle), "--input", str(source), "--output", str(out)]) == 2
    assert f"{source}:2" in capsys.readouterr().err and not out.exists()
    assert (
        main(
            ["predict", "--model", str(trained_bundle), "--input", str(source), "--output", str(out), "--skip-bad-rows"]
        )
        == 0
    )
    assert len(_read_jsonl(out)) == 2
    # A pair task asked for by name needs a target on every row.
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
                "claim",
                "--skip-bad-rows",
            ]
        )
        == 0
    )
    assert _read_jsonl(out) == []
    source.write_text('{"text": "نص أول", "target": "ادعاء"}\n{"text": "نص ثان"}\n', encoding="utf-8")
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
                "claim",
            ]
        )
        == 2
    )
    assert f"{source}:2: task(s) ['claim'] compare a text with a target" in capsys.readouterr().err


def test_predict_refuses_bad_threshold(trained_bundle, sample_data, tmp_path, capsys):
    assert (
        main(
            [
                "predict",
                "--model",
                str(trained_bundle),
                "--input",
                str(sample_data),
                "--output",
                str(tmp_path / "o.jsonl"),
                "--abstain-below",
                "1.5",
            ]
        )
        == 2
    )
    assert "--abstain-below" in capsys.readouterr().err


def test_baseline_command_on_sample_data(sample_data, tmp_path, capsys):
    report_dir = tmp_path / "report"
    assert main(["baseline", "--train", str(sample_data), "--data", str(sample_data), "--report", str(report_dir)]) == 0
    out = capsys.readouterr().out
    assert "baseline · topic" in out and "StanceEval 2024 score" in out
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert set(report["models"]["baseline"]["tasks"]) == {"topic", "stance", "claim"}
    assert (report_dir / "confusion-claim.png").is_file()


def test_baseline_predicts_through_the_predictor_interface(sample_data):
    from training.baseline_model import fit_baseline

    baseline = fit_baseline([sample_data], ["topic", "claim"])
    assert [t.input for t in baseline.manifest.tasks] == ["single", "pair"]
    answer = baseline.predict("سجل المهاجم هدفين وفاز الفريق بالمباراة")
    assert answer["topic"]["label"] == "sports"
    pair = baseline.predict("نفى المتحدث سيطرة الجيش على المدينة", targets="الجيش سيطر على المدينة")
    assert set(pair["claim"]["scores"]) == {"agree", "disagree", "discuss", "unrelated"}


def test_baseline_unknown_label_in_data(sample_data, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "نص", "topic": "weather"}, *sample_rows()[:2]])
    assert main(["baseline", "--train", str(sample_data), "--data", str(data)]) == 2
    assert "'weather'" in capsys.readouterr().err

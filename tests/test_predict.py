"""rasid predict: several inputs, output by extension with the input's columns carried, interruption and
--resume (checked against the inputs, the bundle and the options), and the Ray engine against the local one."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving import batch, output_files, progress
from tests.conftest import sample_rows, write_jsonl
from tests.samples import ARTICLE
from training.cli import main

REPO = Path(__file__).resolve().parents[1]


def _rows(n: int = 20) -> list[dict]:
    """n input rows with an id, a source column, a number and (for some) a target, from the sample texts."""
    samples = sample_rows()
    picked = [samples[(k * 5) % len(samples)] for k in range(n)]  # topic, stance and claim rows mixed
    return [
        {
            "id": f"r{k}",
            "text": s["text"],
            "n": k,
            "source": "test",
            **({"target": s["target"]} if "target" in s else {}),
        }
        for k, s in enumerate(picked)
    ]


def _read(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _labels(lines: list[dict]) -> list[dict]:
    """Each line's labels and scores, whatever the output layout (nested JSONL or flat columns)."""
    out = []
    for line in lines:
        if "predictions" in line:
            out.append({t: (p["label"], round(p["score"], 6)) for t, p in line["predictions"].items()})
        else:
            tasks = {key.rsplit(".", 1)[0] for key in line if key.endswith(".label")}
            out.append(
                {
                    t: (line[f"{t}.label"], round(float(line[f"{t}.score"]), 6))
                    for t in tasks
                    if line[f"{t}.label"] not in (None, "")
                }
            )
    return out


def _predict(bundle, inputs, output, *extra) -> int:
    return main(["predict", "--model", str(bundle), "--input", *map(str, inputs), "--output", str(output), *extra])


# ---- several inputs, formats, carried columns --------------------------------------------------------------


def test_files_globs_and_folders_are_read_in_order_and_the_output_is_never_an_input(trained_bundle, tmp_path):
    rows = _rows(9)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "b.jsonl", rows[3:6])
    write_jsonl(folder / "sub" / "c.jsonl", rows[6:9])
    write_jsonl(folder / ".hidden.jsonl", [{"text": "لا يقرأ"}])
    single = write_jsonl(tmp_path / "a.jsonl", rows[:3])
    out = folder / "out.jsonl"  # inside the input folder: must not be read back on the next run
    assert _predict(trained_bundle, [single, folder], out) == 0
    assert [l["id"] for l in _read(out)] == [r["id"] for r in rows]
    assert _predict(trained_bundle, [single, folder], out) == 0
    assert [l["id"] for l in _read(out)] == [r["id"] for r in rows]
    assert _predict(trained_bundle, [str(folder / "**" / "*.jsonl"), single], out) == 0  # a glob, then a file
    assert [l["id"] for l in _read(out)] == [r["id"] for r in rows[3:] + rows[:3]]
    assert sorted(p.name for p in folder.iterdir()) == [".hidden.jsonl", "b.jsonl", "out.jsonl", "sub"]


def test_an_empty_glob_or_folder_is_a_clear_error(trained_bundle, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _predict(trained_bundle, [tmp_path / "empty"], tmp_path / "o.jsonl") == 2
    assert "no .jsonl, .csv or .parquet file" in capsys.readouterr().err
    assert _predict(trained_bundle, [str(tmp_path / "*.jsonl")], tmp_path / "o.jsonl") == 2
    assert "matches this pattern" in capsys.readouterr().err


def test_jsonl_output_carries_every_input_column_but_the_text(trained_bundle, tmp_path):
    rows = _rows(4)
    out = tmp_path / "o.jsonl"
    assert _predict(trained_bundle, [write_jsonl(tmp_path / "in.jsonl", rows)], out) == 0
    for row, line in zip(rows, _read(out)):
        assert {k: v for k, v in line.items() if k not in batch.RESULT_FIELDS} == {
            k: v for k, v in row.items() if k != "text"
        }
    assert _predict(trained_bundle, [tmp_path / "in.jsonl"], out, "--keep-text") == 0
    assert [l["text"] for l in _read(out)] == [r["text"] for r in rows]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_outputs_are_flat_with_the_carried_columns(trained_bundle, tmp_path, suffix):
    rows = _rows(12)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert _predict(trained_bundle, [source], tmp_path / "ref.jsonl") == 0
    out = tmp_path / f"o{suffix}"
    assert _predict(trained_bundle, [source], out) == 0
    lines = _read(out)
    assert _labels(lines) == _labels(_read(tmp_path / "ref.jsonl"))
    assert [l["id"] for l in lines] == [r["id"] for r in rows] and all(l["source"] == "test" for l in lines)
    assert list(lines[0])[:4] == ["id", "n", "source", "target"]  # the carried columns first, in input order
    assert {"topic.label", "topic.score", "topic.scores", "stance.label", "claim.scores"} < set(lines[0])
    if suffix == ".parquet":  # carried columns keep their types; scores are a struct per task
        assert [l["n"] for l in lines] == list(range(12))
        assert sum(lines[0]["topic.scores"].values()) == pytest.approx(1.0, abs=1e-5)
        for line, row in zip(lines, rows):
            assert (line["stance.label"] is None) == ("target" not in row) == ("stance" in line["skipped_tasks"])
    else:
        assert [l["n"] for l in lines] == [str(k) for k in range(12)]
        assert sum(json.loads(lines[0]["topic.scores"]).values()) == pytest.approx(1.0, abs=1e-5)
        assert lines[0]["truncated"] in ("true", "false")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.jsonl", "ref.jsonl", out.name])


def test_csv_and_parquet_inputs(trained_bundle, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(6)
    pq.write_table(pa.Table.from_pylist(rows[:3]), tmp_path / "a.parquet")
    with open(tmp_path / "b.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "text", "n", "source", "target"])
        writer.writeheader()
        writer.writerows(rows[3:])
    out = tmp_path / "o.jsonl"
    assert _predict(trained_bundle, [tmp_path / "a.parquet", tmp_path / "b.csv"], out) == 0
    lines = _read(out)
    assert [l["id"] for l in lines] == [r["id"] for r in rows]
    assert [l["n"] for l in lines] == [0, 1, 2, "3", "4", "5"]  # Parquet keeps numbers, CSV reads text


def test_documents_to_csv(trained_bundle, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "doc", "text": ARTICLE, "target": "خطة لدعم الشركات"}])
    out = tmp_path / "o.csv"
    assert _predict(trained_bundle, [source], out, "--documents") == 0
    (line,) = _read(out)
    assert line["claim.rule"] == "most-confident-non-neutral" and line["empty"] == "false"
    assert len(json.loads(line["paragraphs"])) == 2 and len(json.loads(line["skipped"])) == 4


def test_an_input_column_named_like_an_output_field_is_refused(trained_bundle, tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "ارتفعت أسعار النفط", "predictions": "mine"}])
    assert _predict(trained_bundle, [source], tmp_path / "o.jsonl") == 2
    assert "['predictions']" in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()


# ---- interruption and --resume -----------------------------------------------------------------------------


def _signal_on_call(monkeypatch, call: int, signum=signal.SIGTERM):
    """Send this process `signum` while the predictor handles its `call`-th chunk: a real signal, delivered
    mid-work, at a point that does not depend on timing."""
    from serving.predictor import Predictor

    calls = []
    original = Predictor.predict_items

    def predict_items(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signum)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_items", predict_items)
    return calls


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_sigterm_leaves_a_valid_prefix_and_resume_finishes_it(trained_bundle, tmp_path, monkeypatch, capsys, suffix):
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    rows = _rows(14)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    reference = tmp_path / f"ref{suffix}"
    assert _predict(trained_bundle, [source], reference) == 0
    out = tmp_path / f"o{suffix}"
    calls = _signal_on_call(monkeypatch, 2)
    assert _predict(trained_bundle, [source], out) == 128 + signal.SIGTERM
    assert len(calls) == 2  # the chunk in hand was finished, no other was started
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after 8 of 14 row(s)" in err and "--resume" in err
    assert [l["id"] for l in _read(out)] == [r["id"] for r in rows[:8]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.jsonl", reference.name, out.name, out.name + progress.PROGRESS_SUFFIX]
    )
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    monkeypatch.undo()
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    assert _predict(trained_bundle, [source], out, "--resume") == 0
    assert _read(out) == _read(reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.jsonl", reference.name, out.name])


def test_sigint_stops_the_same_way(trained_bundle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    source = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    _signal_on_call(monkeypatch, 1, signal.SIGINT)
    assert _predict(trained_bundle, [source], tmp_path / "o.jsonl") == 128 + signal.SIGINT
    assert len(_read(tmp_path / "o.jsonl")) == 4 and "stopped by SIGINT" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_drops_a_chunk_cut_off_by_a_hard_kill(trained_bundle, tmp_path, monkeypatch, suffix):
    """kill -9 can leave half a chunk after the last recorded one: --resume cuts the file back and redoes it."""
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    source = write_jsonl(tmp_path / "in.jsonl", _rows(12))
    assert _predict(trained_bundle, [source], tmp_path / f"ref{suffix}") == 0
    out = tmp_path / f"o{suffix}"
    _signal_on_call(monkeypatch, 1)
    assert _predict(trained_bundle, [source], out) == 128 + signal.SIGTERM
    monkeypatch.undo()
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    with open(out, "ab") as handle:
        handle.write('{"id": "r4", "predictions": {"topic": {"lab'.encode() if suffix == ".jsonl" else b"r4,4,test,")
    assert _predict(trained_bundle, [source], out, "--resume") == 0
    assert _read(out) == _read(tmp_path / f"ref{suffix}")


def test_a_hard_killed_parquet_run_resumes_from_its_last_clean_stop(trained_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    source = write_jsonl(tmp_path / "in.jsonl", _rows(12))
    out = tmp_path / "o.parquet"
    _signal_on_call(monkeypatch, 1)
    assert _predict(trained_bundle, [source], out) == 128 + signal.SIGTERM
    monkeypatch.undo()
    partial = tmp_path / ("o.parquet" + output_files.PARTIAL_SUFFIX)
    partial.write_bytes(b"PAR1 cut off by kill -9")  # what a kill -9 mid-run leaves: no footer
    assert _predict(trained_bundle, [source], out, "--resume") == 0
    assert [l["id"] for l in _read(out)] == [f"r{k}" for k in range(12)] and not partial.exists()


def _interrupted(bundle, source, out, monkeypatch, *extra):
    monkeypatch.setattr(batch, "CHUNK_ROWS", 4)
    _signal_on_call(monkeypatch, 1)
    assert _predict(bundle, [source], out, *extra) == 128 + signal.SIGTERM
    monkeypatch.undo()


def test_resume_refuses_a_changed_input(trained_bundle, tmp_path, monkeypatch, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    out = tmp_path / "o.jsonl"
    _interrupted(trained_bundle, source, out, monkeypatch)
    capsys.readouterr()
    write_jsonl(source, _rows(10)[::-1])  # same size, other order
    assert _predict(trained_bundle, [source], out, "--resume") == 2
    err = capsys.readouterr().err
    assert f"input {source.resolve()} is not the file the run started with" in err and "without --resume" in err
    write_jsonl(source, _rows(10))
    extra = write_jsonl(tmp_path / "more.jsonl", _rows(2))
    assert _predict(trained_bundle, [source, extra], out, "--resume") == 2
    assert "the run read 1 input file(s)" in capsys.readouterr().err
    assert len(_read(out)) == 4  # refusing touched nothing


def test_resume_refuses_a_changed_bundle(bundle_copy, tmp_path, monkeypatch, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    out = tmp_path / "o.jsonl"
    _interrupted(bundle_copy, source, out, monkeypatch)
    capsys.readouterr()
    manifest = bundle_copy / "rasid.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["tasks"][0]["temperature"] = 2.0  # recalibrated: every score moves
    manifest.write_text(json.dumps(data), encoding="utf-8")
    assert _predict(bundle_copy, [source], out, "--resume") == 2
    assert "its manifest or heads differ" in capsys.readouterr().err


def test_resume_refuses_changed_options_but_not_a_new_batch_size(trained_bundle, tmp_path, monkeypatch, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    out = tmp_path / "o.jsonl"
    _interrupted(trained_bundle, source, out, monkeypatch, "--tasks", "topic")
    capsys.readouterr()
    assert _predict(trained_bundle, [source], out, "--resume") == 2
    assert "--tasks was 'topic' when the run started and is None now" in capsys.readouterr().err
    assert _predict(trained_bundle, [source], out, "--resume", "--tasks", "topic", "--batch-size", "3") == 0
    assert len(_read(out)) == 10


def test_resume_of_a_complete_output_or_of_nothing(trained_bundle, tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", _rows(3))
    out = tmp_path / "o.jsonl"
    assert _predict(trained_bundle, [source], out, "--resume") == 0  # nothing to resume: a plain run
    assert len(_read(out)) == 3
    assert _predict(trained_bundle, [source], out, "--resume") == 2
    assert "it has no progress record" in capsys.readouterr().err


def test_a_real_sigterm_to_a_running_predict(trained_bundle, tmp_path):
    """The whole path in a separate process: SIGTERM while it works, exit status, a valid prefix, --resume.
    The predictor is slowed down (0.3 s a chunk) so the signal lands mid-run whatever the machine's speed."""
    source = write_jsonl(tmp_path / "in.jsonl", _rows(40))
    out = tmp_path / "o.jsonl"
    script = (
        "import sys, time\n"
        "from serving.predictor import Predictor\n"
        "from serving import batch\n"
        "from training.cli import main\n"
        "batch.CHUNK_ROWS = 4\n"
        "original = Predictor.predict_items\n"
        "Predictor.predict_items = lambda self, *a, **k: (time.sleep(0.3), original(self, *a, **k))[1]\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    command = [
        sys.executable,
        "-c",
        script,
        "predict",
        "--model",
        str(trained_bundle),
        "--input",
        str(source),
        "--output",
        str(out),
    ]
    env = {**os.environ, "RASID_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_file() and out.stat().st_size) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    done = _read(out)
    assert 0 < len(done) < 40 and [l["id"] for l in done] == [f"r{k}" for k in range(len(done))]
    assert "run the same command with --resume" in err
    assert subprocess.run(command + ["--resume"], cwd=REPO, env=env, capture_output=True).returncode == 0
    assert [l["id"] for l in _read(out)] == [f"r{k}" for k in range(40)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "o.jsonl"]


# ---- the Ray engine ----------------------------------------------------------------------------------------


@pytest.mark.ray
def test_the_ray_engine_gives_the_local_labels_and_scores(trained_bundle, tmp_path):
    """A local Ray of 2 CPUs, 2 actors: the same rows, labels and scores as one process, in input order."""
    ray = pytest.importorskip("ray")
    import logging

    import pyarrow.parquet as pq

    rows = [{k: v for k, v in row.items() if k != "n"} for row in _rows(30)]  # text columns only, as CSV has
    first = write_jsonl(tmp_path / "a.jsonl", rows[:20])
    with open(tmp_path / "b.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "text", "source", "target"])
        writer.writeheader()
        writer.writerows(rows[20:])
    inputs = [first, tmp_path / "b.csv"]
    local, local_documents = tmp_path / "local.parquet", tmp_path / "local-documents.jsonl"
    assert _predict(trained_bundle, inputs, local) == 0
    assert _predict(trained_bundle, [first], local_documents, "--documents") == 0
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        assert _predict(trained_bundle, inputs, tmp_path / "shards", "--engine", "ray", "--workers", "2") == 0
        assert (
            _predict(
                trained_bundle, [first], tmp_path / "shards.jsonl", "--engine", "ray", "--workers", "2", "--documents"
            )
            == 0
        )
    finally:
        ray.shutdown()
    from_parquet = pq.read_table(sorted((tmp_path / "shards").glob("*.parquet"))).to_pylist()
    from_jsonl = [
        json.loads(line)
        for shard in sorted((tmp_path / "shards.jsonl").glob("*.jsonl"))
        for line in shard.read_text(encoding="utf-8").splitlines()
    ]
    for lines, expected in ((from_parquet, _read(local)), (from_jsonl, _read(local_documents))):
        assert [l["id"] for l in lines] == [r["id"] for r in rows][: len(expected)]
        assert _labels(lines) == _labels(expected)
        assert all(l["source"] == "test" and "text" not in l for l in lines)
    assert from_jsonl[0]["topic.rule"] == "length-weighted-mean" and "paragraphs" in from_jsonl[0]


def test_the_ray_engine_refuses_what_it_cannot_do(trained_bundle, tmp_path, capsys):
    pytest.importorskip("ray")
    source = write_jsonl(tmp_path / "in.jsonl", _rows(2))
    assert _predict(trained_bundle, [source], tmp_path / "o.csv", "--engine", "ray") == 2
    assert "Parquet or JSONL shards" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.parquet").write_bytes(b"")
    assert _predict(trained_bundle, [source], tmp_path / "full", "--engine", "ray") == 2
    assert "already exists" in capsys.readouterr().err
    assert _predict(trained_bundle, [source], tmp_path / "o.jsonl", "--workers", "2") == 2
    assert "--engine ray" in capsys.readouterr().err


def test_ray_actors_share_the_cpus(monkeypatch):
    from serving.predict_ray import actor_shares, format_runs

    monkeypatch.delenv("RASID_THREADS", raising=False)
    assert actor_shares(8, None, None) == (1, 8)  # one single-thread actor per CPU
    assert actor_shares(8, 2, None) == (4, 2)  # --workers 2: four threads each
    assert actor_shares(8, None, 2) == (2, 4)  # --threads 2: four actors
    monkeypatch.setenv("RASID_THREADS", "3")
    assert actor_shares(8, 2, None) == (3, 2)
    assert format_runs(["a.jsonl", "b.jsonl", "c.csv", "d.jsonl"]) == [
        ("jsonl", ["a.jsonl", "b.jsonl"]),
        ("csv", ["c.csv"]),
        ("jsonl", ["d.jsonl"]),
    ]

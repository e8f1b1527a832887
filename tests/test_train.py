"""rasid train: the options, the errors, resuming, pair inputs, data-parallel training."""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from serving.errors import DataError, RasidError
from serving.predictor import Predictor
from tests.conftest import tiny_config, write_jsonl
from training.cli import main
from training.layers import keep_lowest_layers
from training.train import TrainConfig, train
from training.training_run import load_encoder


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("epochs", 0, "--epochs must be positive, got 0"),
        ("batch_size", 0, "--batch-size must be at least 1, got 0"),
        ("lr", 2.0, "--lr must be between 0 and 1, got 2.0"),
        ("max_length", 4, "--max-length must be between 8 and 8192, got 4"),
        ("val_fraction", 1.5, "--val-fraction must be between 0 and 1, got 1.5"),
        ("class_weight_power", -1, "--class-weight-power must be in [0, 1], got -1"),
        ("freeze_layers", -1, "--freeze-layers must be 0 or more, got -1"),
        ("keep_layers", -1, "--keep-layers must be 0 or more, got -1"),
        ("layer_lr_decay", 1.5, "--layer-lr-decay must be in (0, 1], got 1.5"),
        ("reinit_layers", -1, "--reinit-layers must be 0 or more, got -1"),
        ("rdrop", -0.5, "--rdrop must be 0 or more, got -0.5"),
        (
            "task_class_weight_power",
            {"stance": 2.0},
            "--task-class-weight-power stance=2.0: the power must be in [0, 1]",
        ),
        ("task_repeat", {"stance": 0}, "--task-repeat stance=0: the number of times must be in (0, 100]"),
        ("task_repeat", {"stance": float("inf")}, "--task-repeat stance=inf: the number of times must be in (0, 100]"),
    ],
)
def test_bad_options_are_rejected_with_their_value(tmp_path, option, value, message):
    with pytest.raises(RasidError, match=re.escape(message)):
        TrainConfig(data=[tmp_path / "d.jsonl"], out=tmp_path / "m", **{option: value})


def test_a_bad_row_stops_training_with_file_and_line(tmp_path, tiny_base, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "نص", "topic": "a"}, {"text": "", "topic": "b"}])
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--base", str(tiny_base)])
    assert code == 2
    assert f"{data}:2: no text" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_validation_labels_never_seen_in_training_are_named(tmp_path, tiny_base, sample_data):
    val = write_jsonl(tmp_path / "v.jsonl", [{"text": "نص", "topic": "weather"}, {"text": "نص", "topic": "sports"}])
    with pytest.raises(DataError, match=r"label 'weather' \(1 rows, first at .*v.jsonl:1\)"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, val_data=[val], tasks=["topic"]))


def test_tasks_without_labels_in_the_data_are_refused(tmp_path, tiny_base, sample_data):
    with pytest.raises(DataError, match=r"task\(s\) \['sentiment'\] have no labels"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic", "sentiment"]))


@pytest.mark.parametrize("option", ["task_class_weight_power", "task_repeat"])
def test_a_per_task_option_for_a_task_the_run_does_not_train_is_refused(tmp_path, tiny_base, sample_data, option):
    config = tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], **{option: {"stnce": 1}})
    with pytest.raises(RasidError, match="does not train: stnce"):
        train(config)


def test_only_the_chosen_tasks_get_heads(tmp_path, tiny_base, sample_data):
    out = train(tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], epochs=1))
    assert Predictor.from_bundle(out).task_names == ["topic"]


def test_frozen_layers_and_embeddings_keep_their_pretrained_weights_and_the_rest_trains(
    tmp_path, tiny_base, sample_data
):
    from safetensors.torch import load_file

    out = train(tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], epochs=1, freeze_layers=1))
    before, after = load_file(tiny_base / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name for name in after if not torch.equal(after[name], before[name])}
    assert changed and all(name.startswith("encoder.layer.1.") for name in changed)  # the tiny base has 2 layers


def test_freezing_every_layer_is_refused_before_an_earlier_run_is_cleared(tmp_path, tiny_base, sample_data):
    earlier = tmp_path / "m.run" / "checkpoint-5" / "model.safetensors"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"weights")
    with pytest.raises(RasidError, match="would freeze every layer; the base has 2"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], freeze_layers=2))
    assert earlier.read_bytes() == b"weights"


def test_keeping_the_lowest_layers_gives_a_smaller_model_that_starts_from_those_layers(
    tmp_path, tiny_base, sample_data
):
    from safetensors.torch import load_file

    out = train(
        tiny_config(
            sample_data,
            tmp_path / "m",
            tiny_base,
            tasks=["topic"],
            epochs=1,
            keep_layers=1,
            freeze_layers=0,
            freeze_embeddings=True,
        )
    )
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1  # the tiny base has 2
    weights = load_file(out / "model.safetensors")
    assert not any(name.startswith("encoder.layer.1.") for name in weights)
    assert any(name.startswith("encoder.layer.0.") for name in weights)
    # before training, the kept layers are exactly the base's lowest ones
    encoder, _ = load_encoder(str(tiny_base))
    keep_lowest_layers(encoder, 1)
    base = load_file(tiny_base / "model.safetensors")
    kept = encoder.hf_state_dict()
    assert set(kept) == {name for name in base if not name.startswith(("encoder.layer.1.", "pooler."))}
    assert all(torch.equal(tensor, base[name]) for name, tensor in kept.items())
    predictor = Predictor.from_bundle(out)
    assert len(predictor.model.encoder.layers) == 1
    assert predictor.predict("فاز الفريق بالكأس")["topic"]["label"]


def test_keeping_more_layers_than_the_base_has_is_refused(tmp_path, tiny_base, sample_data):
    with pytest.raises(RasidError, match=r"--keep-layers 3 is more layers than the base has \(2\)"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], keep_layers=3))


def test_freezing_every_layer_of_a_trimmed_base_is_refused_with_its_new_depth(tmp_path, tiny_base, sample_data):
    with pytest.raises(RasidError, match="would freeze every layer; the base has 1"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], keep_layers=1, freeze_layers=1))


def test_a_pair_task_receives_the_target_with_the_text(trained_bundle, monkeypatch):
    predictor = Predictor.from_bundle(trained_bundle)
    seen = []
    encode = predictor.model.encode
    monkeypatch.setattr(predictor.model, "encode", lambda **kw: seen.append(kw["input_ids"]) or encode(**kw))
    predictor.predict("فاز الفريق بالكأس", targets="لقاح كورونا", tasks=["stance"])
    decoded = predictor.tokenizer.decode(seen[0][0], skip_special_tokens=True).replace(" ", "").replace("##", "")
    assert "لقاحكورونا" in decoded and "فازالفريقبالكأس" in decoded
    # and the target changes the answer: same text, two targets, two different score vectors
    one = predictor.predict("فاز الفريق بالكأس", targets="لقاح كورونا", tasks=["stance"])["stance"]["scores"]
    two = predictor.predict("فاز الفريق بالكأس", targets="تمكين المرأة", tasks=["stance"])["stance"]["scores"]
    assert one != two


class CrashAt(TrainerCallback):
    """Simulates a crash (power cut, kill) right after optimiser step `step`."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated crash")


class RecordStart(TrainerCallback):
    """Records the optimiser step the first training step starts from (0 for a fresh run)."""

    def __init__(self):
        self.started_at = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.started_at is None:
            self.started_at = state.global_step


class RecordSteps(TrainerCallback):
    """Records how many optimiser steps the run took."""

    def on_train_end(self, args, state, control, **kwargs):
        self.steps = state.global_step


def test_sampling_by_task_gives_the_repeated_task_more_steps(tmp_path, tiny_base, sample_data):
    steps = {}
    for name, repeat in (("once", {}), ("thrice", {"stance": 3})):
        record = RecordSteps()
        config = tiny_config(sample_data, tmp_path / name, tiny_base, epochs=1, fusion=False, task_repeat=repeat)
        train(config, callbacks=[record])
        steps[name] = record.steps
    assert steps["thrice"] > steps["once"]


def test_an_interrupted_run_resumes_from_its_last_checkpoint_and_ends_where_an_unbroken_one_does(
    tmp_path, tiny_base, sample_data
):
    unbroken = train(tiny_config(sample_data, tmp_path / "unbroken", tiny_base, save_steps=3, epochs=3))

    config = tiny_config(sample_data, tmp_path / "m", tiny_base, save_steps=3, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[CrashAt(5)])
    assert not (tmp_path / "m").exists()  # no half-written bundle
    assert sorted(p.name for p in config.run_dir.glob("checkpoint-*")) == ["checkpoint-3"]

    with pytest.raises(RasidError, match="options changed: \\['epochs'\\]"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, save_steps=3, epochs=4, resume=True))
    run_file = config.run_dir / "run.json"  # as a rasid from before --keep-layers wrote it
    older = json.loads(run_file.read_text(encoding="utf-8"))
    del older["config"]["keep_layers"]
    run_file.write_text(json.dumps(older), encoding="utf-8")
    start = RecordStart()
    resumed = train(
        tiny_config(sample_data, tmp_path / "m", tiny_base, save_steps=3, epochs=3, resume=True), callbacks=[start]
    )
    assert start.started_at == 3
    a, b = Predictor.from_bundle(unbroken), Predictor.from_bundle(resumed)
    for text in ["فاز الفريق بالكأس", "ارتفع سعر النفط"]:
        for task in ["topic"]:
            assert a.predict(text)[task]["scores"] == pytest.approx(b.predict(text)[task]["scores"], abs=1e-5)


class CountPasses(TrainerCallback):
    def __init__(self):
        self.evaluations = self.predictions = 0

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluations += 1

    def on_predict(self, args, state, control, **kwargs):
        self.predictions += 1


def test_calibration_reads_the_best_epochs_own_validation_answers_instead_of_a_second_pass(
    tmp_path, tiny_base, sample_data
):
    config = tiny_config(sample_data, tmp_path / "m", tiny_base, tasks=["topic"], fusion=False)
    passes = CountPasses()
    out = train(config, callbacks=[passes])
    assert (passes.evaluations, passes.predictions) == (2, 0)  # one validation pass per epoch, none after
    best = json.loads((config.run_dir / "best" / "score.json").read_text())["metrics"]
    validation = json.loads((out / "rasid.json").read_text())["metrics"]["validation"]["topic"]
    assert validation["accuracy"] == pytest.approx(best["eval_topic_accuracy"])
    assert validation["macro_f1"] == pytest.approx(best["eval_topic_macro_f1"])


def test_kept_answers_for_other_validation_examples_are_not_used(tmp_path):
    from training.hf_trainer import ANSWERS_FILE, best_answers

    (tmp_path / "best").mkdir()
    np.savez(tmp_path / "best" / ANSWERS_FILE, logits=np.zeros((2, 3)), labels=[0, 1], task_ids=[0, 0])
    assert best_answers(tmp_path, [0, 1], [0, 0])[0].shape == (2, 3)
    assert best_answers(tmp_path, [1, 0], [0, 0])[0].shape == (2, 3)  # the same examples in another order
    assert best_answers(tmp_path, [1, 1], [0, 0]) is None
    assert best_answers(tmp_path / "elsewhere", [0, 1], [0, 0]) is None


def test_a_run_does_not_resume_on_validation_files_whose_contents_changed(tmp_path, tiny_base, sample_data):
    lines = sample_data.read_text(encoding="utf-8").splitlines(keepends=True)
    train_file, val_file = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train_file.write_text("".join(lines[: len(lines) * 3 // 4]), encoding="utf-8")
    val_file.write_text("".join(lines[len(lines) * 3 // 4 :]), encoding="utf-8")
    config = tiny_config(train_file, tmp_path / "m", tiny_base, val_data=[val_file], save_steps=3, fusion=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[CrashAt(5)])
    val_file.write_text("".join(lines[len(lines) * 3 // 4 : -1]), encoding="utf-8")  # same path, a row fewer
    config.resume = True
    with pytest.raises(RasidError, match="the validation files changed"):
        train(config)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, tiny_base, sample_data):
    with pytest.raises(RasidError, match="no checkpoint in .* to continue from"):
        train(tiny_config(sample_data, tmp_path / "m", tiny_base, resume=True))


def test_two_cpu_processes_train_data_parallel(tmp_path, tiny_base, sample_data):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port for the processes to meet on
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        port,
        "-m",
        "training",
        "train",
        "--data",
        str(sample_data),
        "--out",
        str(out),
        "--base",
        str(tiny_base),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--val-fraction",
        "0.25",
        "--max-length",
        "64",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(next((tmp_path / "ddp.run").glob("checkpoint-*/trainer_state.json")).read_text())
    # 31 training examples, 2 processes x 4 per batch: 4 steps per epoch instead of 8 on one process.
    assert state["global_step"] == 4
    assert (out / "rasid.json").is_file()

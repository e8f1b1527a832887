"""`--average-last`: the trained weights are the mean of the weights after each of the last steps."""

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from serving.errors import RasidError
from tests.conftest import tiny_config
from training.averaging import AVERAGE_FILE, AverageLastSteps
from training.train import train


def run_steps(callback, model, state, steps):
    """Pretend to train: after step s every weight equals s."""
    for step in steps:
        state.global_step = step
        with torch.no_grad():
            model.weight.fill_(step)
        callback.on_step_end(None, state, None)
        if step % 2 == 0:
            callback.on_save(None, state, None)


def started(model, share, run_dir):
    """The callback at the start of a 10-step run, and the run's state."""
    callback = AverageLastSteps(model, share=share, run_dir=run_dir)
    state = SimpleNamespace(global_step=0, max_steps=10, is_world_process_zero=True)
    callback.on_train_begin(None, state, None)
    return callback, state


def test_the_last_share_of_steps_is_averaged_into_the_weights_at_the_end(tmp_path):
    model = nn.Linear(2, 2)
    callback, state = started(model, 0.3, tmp_path)
    run_steps(callback, model, state, range(1, 11))
    callback.on_epoch_end(None, state, None)
    assert torch.allclose(model.weight, torch.full((2, 2), 9.0))  # the mean of steps 8, 9 and 10


def test_an_earlier_epoch_end_leaves_the_weights_alone(tmp_path):
    model = nn.Linear(2, 2)
    callback, state = started(model, 0.8, tmp_path)
    run_steps(callback, model, state, range(1, 6))
    callback.on_epoch_end(None, state, None)  # step 5 of 10: the first of two epochs
    assert torch.equal(model.weight, torch.full((2, 2), 5.0))


def test_a_resumed_run_continues_the_same_mean(tmp_path):
    model = nn.Linear(2, 2)
    first, state = started(model, 0.5, tmp_path)
    run_steps(first, model, state, range(1, 9))  # interrupted after step 8; the last checkpoint was step 8
    assert (tmp_path / AVERAGE_FILE).is_file()
    resumed = AverageLastSteps(model, share=0.5, run_dir=tmp_path)
    resumed.on_train_begin(None, state, None)
    run_steps(resumed, model, state, range(9, 11))
    resumed.on_epoch_end(None, state, None)
    assert torch.allclose(model.weight, torch.full((2, 2), 8.0))  # the mean of steps 6 to 10


def test_rasid_train_averages_when_asked_and_refuses_a_share_outside_zero_to_one(tmp_path, tiny_base, sample_data):
    options = dict(epochs=1, int8_check=False, fusion=False, save_steps=1)  # one epoch: the averaged one is kept
    plain = train(tiny_config(sample_data, tmp_path / "plain", tiny_base, **options))
    averaged = train(tiny_config(sample_data, tmp_path / "averaged", tiny_base, average_last=0.5, **options))
    assert (tmp_path / "averaged.run" / AVERAGE_FILE).is_file()
    weights = [load_file(bundle / "model.safetensors") for bundle in (plain, averaged)]
    assert any(not torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    with pytest.raises(RasidError, match="--average-last must be in"):
        tiny_config(sample_data, tmp_path / "c", tiny_base, average_last=1.0)

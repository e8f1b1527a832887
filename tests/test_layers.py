"""Per-layer training options: layer-wise learning-rate decay, re-initialised top layers, R-Drop."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from serving.errors import RasidError
from serving.model import ABSENT_LABEL_LOGIT, MultiTaskModel
from serving.predictor import Predictor
from tests.conftest import tiny_config
from training.hf_trainer import symmetric_kl
from training.layers import layer_rate_scales, reinit_top_layers
from training.train import train
from training.training_run import load_encoder


def test_layer_wise_decay_slows_each_layer_below_the_top_and_keeps_the_heads_at_the_full_rate(tiny_base):
    encoder, _ = load_encoder(str(tiny_base))  # two layers
    model = MultiTaskModel(encoder, {"topic": 3})
    scales = layer_rate_scales(encoder, 0.5)
    by_part = {}
    for name, parameter in model.named_parameters():
        part = "layer 1" if ".layers.1." in name else "layer 0" if ".layers.0." in name else "other"
        by_part.setdefault("embeddings" if "embedding" in name else part, set()).add(scales.get(id(parameter), 1.0))
    assert by_part == {"layer 1": {1.0}, "layer 0": {0.5}, "embeddings": {0.25}, "other": {1.0}}  # other: the heads


def test_reinitialising_the_top_layer_redraws_it_and_leaves_the_rest_pretrained(tiny_base):
    base = load_file(tiny_base / "model.safetensors")
    encoder, _ = load_encoder(str(tiny_base))
    reinit_top_layers(encoder, 1, seed=13)
    weights = encoder.hf_state_dict()
    changed = {name for name, tensor in weights.items() if not torch.equal(tensor, base[name])}
    assert changed and all(name.startswith("encoder.layer.1.") for name in changed)
    again, _ = load_encoder(str(tiny_base))
    reinit_top_layers(again, 1, seed=13)
    assert all(torch.equal(tensor, weights[name]) for name, tensor in again.hf_state_dict().items())


def test_redrawing_a_layer_that_stays_frozen_is_refused(tiny_base):
    encoder, _ = load_encoder(str(tiny_base))
    with pytest.raises(RasidError, match="--reinit-layers 2 with --freeze-layers 1 would leave redrawn layers frozen"):
        reinit_top_layers(encoder, 2, seed=13, frozen=1)


def test_symmetric_kl_is_zero_for_equal_answers_and_ignores_a_tasks_absent_labels():
    first = torch.tensor([[2.0, 0.0, ABSENT_LABEL_LOGIT], [1.0, 1.0, 1.0]])
    second = torch.tensor([[0.0, 2.0, ABSENT_LABEL_LOGIT], [1.0, 1.0, 1.0]])
    kl = symmetric_kl(first, second)
    assert kl[0] > 0 and kl[1] == 0
    assert torch.allclose(kl, symmetric_kl(second, first))
    two_labels = symmetric_kl(first[:1, :2], second[:1, :2])
    assert torch.allclose(kl[:1], two_labels)


class PeakRates(TrainerCallback):
    def __init__(self):
        self.rates = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates = sorted({group["initial_lr"] for group in optimizer.param_groups}, reverse=True)  # the peaks


def test_a_run_with_layer_decay_a_fresh_top_layer_and_rdrop_trains_each_layer_at_its_rate(
    tmp_path, tiny_base, sample_data
):
    rates = PeakRates()
    config = tiny_config(
        sample_data,
        tmp_path / "m",
        tiny_base,
        tasks=["topic"],
        epochs=1,
        layer_lr_decay=0.5,
        reinit_layers=1,
        rdrop=1.0,
    )
    out = train(config, callbacks=[rates])
    assert rates.rates == pytest.approx([1e-3, 5e-4, 2.5e-4])  # heads and top layer, layer 0, embeddings
    assert Predictor.from_bundle(out).predict("فاز الفريق بالكأس")["topic"]["label"]

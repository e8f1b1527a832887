"""rasid trains BERT bases on serving.encoder: the same function and gradients as transformers.BertModel,
a dropout that drops what F.dropout drops, and a saved folder that transformers loads as it was."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, DistilBertConfig, DistilBertModel

from serving.encoder import BertEncoder, dropout, load_encoder, trainable_encoder
from tests.samples import STANCE
from training.training_run import load_encoder as load_base


def _without_dropout(base):
    return AutoModel.from_pretrained(
        base, add_pooling_layer=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )


def _pairs(tokenizer):
    batch = tokenizer([t for t, _, _ in STANCE[:6]], [x for _, x, _ in STANCE[:6]], padding=True, return_tensors="pt")
    assert batch["attention_mask"].min() == 0, "the batch should contain padding"
    return batch


def test_a_bert_base_trains_on_the_plain_torch_encoder_and_other_architectures_on_transformers(tiny_base):
    encoder, _ = load_base(str(tiny_base))
    assert isinstance(encoder, BertEncoder)
    assert all(p.requires_grad for p in encoder.parameters())
    distilbert = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    assert trainable_encoder(distilbert) is None


def test_training_outputs_and_gradients_match_transformers(tiny_base):
    reference = _without_dropout(tiny_base).train()
    encoder = trainable_encoder(reference)
    encoder.train()
    batch = _pairs(AutoTokenizer.from_pretrained(tiny_base))
    real = batch["attention_mask"].bool()
    weights = torch.randn(real.shape[0], real.shape[1], encoder.config.hidden_size)  # any loss that uses every token
    (reference(**batch).last_hidden_state[real] * weights[real]).sum().backward()
    got = encoder(**batch)
    (got[real] * weights[real]).sum().backward()
    with torch.no_grad():
        assert torch.allclose(got[real], reference(**batch).last_hidden_state[real], atol=1e-5)
    hidden = encoder.config.hidden_size
    layer, hf_layer = encoder.layers[0], reference.encoder.layer[0]
    assert torch.allclose(layer.ffn_in.weight.grad, hf_layer.intermediate.dense.weight.grad, atol=1e-5)
    assert torch.allclose(layer.qkv.weight.grad[:hidden], hf_layer.attention.self.query.weight.grad, atol=1e-5)
    # sums over every token of the batch: large values, so a relative tolerance
    assert torch.allclose(
        encoder.position_embeddings.weight.grad,
        reference.embeddings.position_embeddings.weight.grad,
        rtol=1e-4,
        atol=1e-4,
    )


def test_training_attention_over_padded_texts_equals_attention_text_by_text(tiny_base):
    encoder = trainable_encoder(AutoModel.from_pretrained(tiny_base, add_pooling_layer=False))
    layer = encoder.layers[0]
    layer.attention_dropout = 0.0
    lengths = [5, 9, 2]
    real = torch.zeros(3, 9, dtype=torch.bool)
    for row, length in enumerate(lengths):
        real[row, :length] = True
    qkv = torch.randn(sum(lengths), 3, layer.heads, encoder.config.hidden_size // layer.heads)
    text_by_text = torch.cat([layer._attend(text) for text in qkv.split(lengths)])
    assert torch.allclose(layer._attend_padded(qkv, real), text_by_text, atol=1e-5)


def test_dropout_drops_a_fraction_p_and_keeps_the_expected_value():
    torch.manual_seed(0)
    values = torch.ones(1_000_000)
    dropped = dropout(values, 0.1, training=True)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.1, abs=0.002)
    assert dropped.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.005)
    assert dropout(values, 0.1, training=False) is values


def test_dropout_masks_follow_torch_seed():
    values = torch.ones(1000)
    torch.manual_seed(3)
    first, second = dropout(values, 0.5, True), dropout(values, 0.5, True)
    torch.manual_seed(3)
    assert torch.equal(dropout(values, 0.5, True), first)
    assert not torch.equal(first, second)


def test_dropout_passes_gradients_only_through_kept_values():
    values = torch.ones(1000, requires_grad=True)
    kept = dropout(values, 0.3, True)
    kept.sum().backward()
    assert torch.equal(values.grad, kept.detach())


def test_the_saved_folder_loads_in_transformers_with_the_same_outputs(tiny_base, tmp_path):
    encoder = trainable_encoder(AutoModel.from_pretrained(tiny_base, add_pooling_layer=False))
    with torch.no_grad():
        encoder.layers[1].ffn_out.weight.add_(0.5)  # a change that must survive the round trip
    encoder.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path, add_pooling_layer=False).eval()
    batch = _pairs(AutoTokenizer.from_pretrained(tiny_base))
    real = batch["attention_mask"].bool()
    with torch.inference_mode():
        expected = encoder.eval()(**batch)
        assert torch.allclose(reloaded(**batch).last_hidden_state[real], expected[real], atol=1e-5)
        assert torch.allclose(load_encoder(tmp_path)(**batch), expected, atol=1e-6)

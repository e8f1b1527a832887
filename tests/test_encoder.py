"""serving.encoder computes what transformers.BertModel computes, from the same bundle files."""

import json

import pytest
import torch
from transformers import AutoModel

from serving.bundle import load_bundle
from serving.encoder import BertEncoder, EncoderConfig, load_encoder
from serving.errors import BundleError
from serving.predictor import Predictor
from tests.samples import STANCE, TOPIC


def _batch(tokenizer, pairs: bool):
    if pairs:
        return tokenizer(
            [t for t, _, _ in STANCE[:6]], [x for _, x, _ in STANCE[:6]], padding=True, return_tensors="pt"
        )
    return tokenizer([t for t, _ in TOPIC[:6]], padding=True, return_tensors="pt")


@pytest.mark.parametrize("pairs", [False, True])
def test_the_plain_torch_encoder_matches_transformers_on_the_same_weights(trained_bundle, pairs):
    reference = AutoModel.from_pretrained(trained_bundle, add_pooling_layer=False).eval()
    encoder = load_encoder(trained_bundle)
    _, _, tokenizer = load_bundle(trained_bundle)
    batch = _batch(tokenizer, pairs)
    assert batch["attention_mask"].min() == 0, "the batch should contain padding"
    with torch.inference_mode():
        expected = reference(**batch).last_hidden_state
        got = encoder(**batch)
    real = batch["attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)


def test_a_text_encodes_the_same_alone_and_padded_beside_a_longer_one(trained_bundle):
    encoder = load_encoder(trained_bundle)
    _, _, tokenizer = load_bundle(trained_bundle)
    short, long = TOPIC[0][0], " ".join(t for t, _ in TOPIC[:4])
    alone = tokenizer([short], return_tensors="pt")
    batch = tokenizer([long, short], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] > alone["input_ids"].shape[1]
    with torch.inference_mode():
        by_itself = encoder(**alone)[0]
        beside = encoder(**batch)[1]
    length = by_itself.shape[0]
    assert torch.allclose(beside[:length], by_itself, atol=1e-5)
    assert beside[length:].abs().max() == 0  # nothing is computed for the padding


def test_bf16_weights_halve_the_matrices_and_stay_close_to_fp32(trained_bundle):
    fp32, bf16 = load_encoder(trained_bundle), load_encoder(trained_bundle, torch.bfloat16)
    assert bf16.layers[0].qkv.weight.dtype == torch.bfloat16
    assert bf16.word_embeddings.weight.dtype == torch.bfloat16
    assert bf16.layers[0].ffn_norm.weight.dtype == torch.float32  # norms stay fp32, as under autocast
    _, _, tokenizer = load_bundle(trained_bundle)
    batch = _batch(tokenizer, pairs=True)
    with torch.inference_mode():
        difference = (fp32(**batch) - bf16(**batch)).abs().max()
    assert 0 < difference < 0.1


def test_predictor_from_a_bundle_runs_the_plain_torch_encoder_with_the_trained_predictions(trained_bundle):
    exact = Predictor.from_bundle(trained_bundle, precision="fp32")
    assert isinstance(exact.model.encoder, BertEncoder)
    manifest, model, tokenizer = load_bundle(trained_bundle)
    reference = Predictor(manifest, model, tokenizer, precision="fp32")
    texts = [t for t, _ in TOPIC[:8]]
    for got, expected in zip(exact.predict(texts), reference.predict(texts)):
        for task in expected:
            assert got[task]["label"] == expected[task]["label"]
            assert got[task]["score"] == pytest.approx(expected[task]["score"], abs=1e-5)


def test_int8_runs_the_plain_torch_encoder_in_int8(trained_bundle):
    from serving.encoder import Int8Linear

    predictor = Predictor.from_bundle(trained_bundle, precision="int8")
    assert isinstance(predictor.model.encoder.layers[0].ffn_in, Int8Linear)
    assert set(predictor.predict(TOPIC[0][0])) == {"topic"}


def test_int8_quantises_the_exact_weights_and_keeps_fp32_word_embeddings(trained_bundle):
    from serving.encoder import Int8Linear

    int8 = Predictor.from_bundle(trained_bundle, precision="int8").model.encoder
    exact = load_encoder(trained_bundle)  # fp32, as trained
    assert int8.word_embeddings.weight.dtype == torch.float32
    assert torch.equal(int8.word_embeddings.weight, exact.word_embeddings.weight)
    for name in ("qkv", "attention_out", "ffn_in", "ffn_out"):
        expected = Int8Linear(getattr(exact.layers[-1], name))
        got = getattr(int8.layers[-1], name)
        assert torch.equal(got.weight_t, expected.weight_t) and torch.equal(got.weight_scale, expected.weight_scale)


def test_a_truncated_weights_file_is_a_bundle_error(bundle_copy):
    weights = bundle_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(BundleError, match="truncated"):
        load_encoder(bundle_copy)


def test_other_architectures_are_left_to_transformers():
    assert EncoderConfig.supports({"model_type": "bert", "hidden_act": "gelu"})
    assert not EncoderConfig.supports({"model_type": "xlm-roberta"})
    assert not EncoderConfig.supports({"model_type": "bert", "position_embedding_type": "relative_key"})


def test_int8_rows_do_not_depend_on_their_batch_mates_and_stay_close_to_fp32(trained_bundle):
    encoder = load_encoder(trained_bundle)
    _, _, tokenizer = load_bundle(trained_bundle)
    batch = _batch(tokenizer, pairs=True)
    with torch.inference_mode():
        exact = encoder(**batch)
        encoder.quantize_int8()
        together = encoder(**batch)
        alone = encoder(**{key: value[:1, : int(batch["attention_mask"][0].sum())] for key, value in batch.items()})
    real = batch["attention_mask"].bool()
    assert torch.allclose(alone[0], together[0][real[0]], atol=1e-5)
    assert 0 < (together[real] - exact[real]).abs().max() < 0.2


def test_a_config_without_the_bert_shape_is_a_bundle_error(bundle_copy):
    config = json.loads((bundle_copy / "config.json").read_text(encoding="utf-8"))
    del config["hidden_size"]
    (bundle_copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(BundleError, match="not a complete BERT config"):
        load_encoder(bundle_copy)

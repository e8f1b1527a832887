"""Which parts of a BERT-like encoder train, and how fast: keep, freeze or re-initialise layers; per-layer rates."""

from __future__ import annotations

from serving.errors import RasidError


def embeddings_and_layers(encoder, option: str) -> tuple[list, object]:
    """The embedding modules and the layer list of a BERT-like encoder (rasid's or transformers')."""
    from serving.encoder import BertEncoder

    if isinstance(encoder, BertEncoder):
        return [
            encoder.word_embeddings,
            encoder.position_embeddings,
            encoder.token_type_embeddings,
            encoder.embedding_norm,
        ], encoder.layers
    if hasattr(encoder, "embeddings") and hasattr(getattr(encoder, "encoder", None), "layer"):  # BERT-like
        return [encoder.embeddings], encoder.encoder.layer
    raise RasidError(f"{option} knows BERT-like encoders only; this base is {type(encoder).__name__}.")


def keep_lowest_layers(encoder, count: int) -> None:
    """Drop every layer above the `count` lowest, so the fine-tuned model is that much smaller and faster.
    Dropping the top of a pretrained encoder costs less accuracy than dropping anywhere else (Sajjad et al.,
    "On the effect of dropping layers of pre-trained transformer models", 2023); benchmarks/quality.py measures
    it on this project's data. The saved config says the new depth, so every loader builds the smaller model."""
    from torch import nn

    _, layers = embeddings_and_layers(encoder, "--keep-layers")
    if count > len(layers):
        raise RasidError(f"--keep-layers {count} is more layers than the base has ({len(layers)}).")
    kept = nn.ModuleList(list(layers)[:count])
    if hasattr(encoder, "layers"):  # rasid's encoder
        encoder.layers = kept
        encoder.config.num_hidden_layers = count
        encoder.hf_config["num_hidden_layers"] = count
    else:
        encoder.encoder.layer = kept
        encoder.config.num_hidden_layers = count


def freeze_lowest_layers(encoder, count: int) -> None:
    """Keep all embeddings and the `count` lowest layers as pretrained. Nothing below the first trained layer
    then needs a gradient, so autograd skips the whole backward pass there (the saving is in time, not only
    in optimiser state)."""
    frozen, layers = embeddings_and_layers(encoder, "--freeze-layers")
    if count >= len(layers):
        raise RasidError(f"--freeze-layers {count} would freeze every layer; the base has {len(layers)}.")
    for module in [*frozen, *layers[:count]]:
        module.requires_grad_(False)


def reinit_top_layers(encoder, count: int, seed: int, frozen: int = 0, std: float = 0.02) -> None:
    """Draw the `count` highest layers afresh (normal(0, std) weights, zero biases, unit norms). The top of a
    pretrained encoder is the most specific to its pretraining objective (for e5, retrieval); starting it
    anew can help a small fine-tuning set (Zhang et al., "Revisiting few-sample BERT fine-tuning", 2021)."""
    import torch
    from torch import nn

    _, layers = embeddings_and_layers(encoder, "--reinit-layers")
    generator = torch.Generator().manual_seed(seed)
    if count > len(layers):
        raise RasidError(f"--reinit-layers {count} is more layers than the base has ({len(layers)}).")
    if count + frozen > len(layers):  # a redrawn layer that never trains would be noise
        raise RasidError(
            f"--reinit-layers {count} with --freeze-layers {frozen} would leave redrawn layers frozen; "
            f"the base has {len(layers)}."
        )
    for layer in list(layers)[len(layers) - count :]:
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def layer_rate_scales(encoder, decay: float) -> dict[int, float]:
    """Layer-wise learning-rate decay: the factor on the peak rate of each encoder parameter, by id(parameter).
    The top layer trains at the full rate (and so does anything outside the encoder: the heads), each layer
    below at `decay` times the one above, the embeddings below the lowest layer (Howard and Ruder, ULMFiT,
    2018; Sun et al., "How to fine-tune BERT for text classification?", 2019)."""
    embeddings, layers = embeddings_and_layers(encoder, "--layer-lr-decay")
    scales = {}
    for module in embeddings:
        scales.update({id(p): decay ** len(layers) for p in module.parameters()})
    for index, layer in enumerate(layers):
        scales.update({id(p): decay ** (len(layers) - 1 - index) for p in layer.parameters()})
    return scales

"""`rasid adapt`: masked-LM pre-training on unlabelled text writes a base folder that `rasid train` accepts."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, TrainerCallback

from serving.errors import RasidError
from tests.conftest import sample_rows, tiny_config, write_jsonl
from training.adapt_corpus import read_texts, windows
from training.cli import main
from training.masked_lm import ADAPT_FILE, AdaptConfig, adapt
from training.train import train


def tiny_adapt(tmp_path, tiny_base, corpus, **overrides) -> AdaptConfig:
    options = dict(corpus=[corpus], out=tmp_path / "adapted", base=str(tiny_base), epochs=3, batch_size=16)
    return AdaptConfig(**{**options, "lr": 1e-3, "head_lr": 1e-2, "max_length": 32, "save_steps": 2, **overrides})


@pytest.fixture
def corpus(tmp_path):
    """The sample texts, each four times with a different last word: held-out windows then share most of
    their words with trained ones, so a tiny model can learn something that carries over."""
    rows = [{**row, "text": f"{row['text']} {n}"} for n in range(4) for row in sample_rows()]
    return write_jsonl(tmp_path / "texts.jsonl", rows)


def test_adapting_moves_the_layers_keeps_the_vocabulary_and_lowers_the_held_out_masked_lm_loss(
    tmp_path, tiny_base, corpus
):
    out = adapt(tiny_adapt(tmp_path, tiny_base, corpus))
    before, after = load_file(tiny_base / "model.safetensors"), load_file(out / "model.safetensors")
    assert torch.equal(after["embeddings.word_embeddings.weight"], before["embeddings.word_embeddings.weight"])
    assert not torch.equal(after["encoder.layer.1.output.dense.weight"], before["encoder.layer.1.output.dense.weight"])
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tiny_base).get_vocab()
    record = json.loads((out / ADAPT_FILE).read_text())
    loss = record["held_out_masked_lm_loss"]
    assert loss["after"] < loss["before"]
    assert record["texts"] == 4 * len({row["text"] for row in sample_rows()})
    assert not (tmp_path / "adapted.run").exists()  # checkpoints go once the folder is written


def test_rasid_train_fine_tunes_from_an_adapted_base(tmp_path, tiny_base, corpus):
    adapted = adapt(tiny_adapt(tmp_path, tiny_base, corpus, epochs=1))
    bundle = train(tiny_config(corpus, tmp_path / "bundle", adapted, epochs=1, int8_check=False, fusion=False))
    assert json.loads((bundle / "rasid.json").read_text())["base_model"] == str(adapted)


def test_the_corpus_is_the_text_field_of_rasid_files_and_the_lines_of_raw_files_each_text_once(tmp_path):
    rasid_file = write_jsonl(tmp_path / "rows.jsonl", [{"text": "نص أول هنا", "target": "هدف", "stance": "Favor"}] * 2)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "news.txt").write_text("خبر من ثلاث كلمات\nقصير\n", encoding="utf-8")
    assert sorted(read_texts([rasid_file, raw], max_texts=0, seed=13)) == sorted(["نص أول هنا", "خبر من ثلاث كلمات"])


def test_a_long_text_is_cut_into_windows_that_each_start_and_end_with_the_special_tokens(tiny_base):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    long_text = " ".join(row["text"] for row in sample_rows()[:20])
    pieces = windows([long_text], tokenizer, max_length=16)
    assert len(pieces) > 1
    assert all(len(p) <= 16 and p[0] == tokenizer.cls_token_id and p[-1] == tokenizer.sep_token_id for p in pieces)


class StopAfter(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_an_interrupted_adaptation_resumes_from_its_last_checkpoint(tmp_path, tiny_base, corpus):
    config = tiny_adapt(tmp_path, tiny_base, corpus, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        adapt(config, callbacks=[StopAfter(3)])
    assert (tmp_path / "adapted.run" / "checkpoint-2").is_dir() and not config.out.exists()
    with pytest.raises(RasidError, match="options changed"):
        adapt(tiny_adapt(tmp_path, tiny_base, corpus, epochs=3, resume=True))
    resumed = tiny_adapt(tmp_path, tiny_base, corpus, epochs=2, resume=True)
    assert (adapt(resumed) / ADAPT_FILE).exists()


def test_bad_requests_are_refused_with_a_sentence(tmp_path, tiny_base, corpus, capsys):
    with pytest.raises(RasidError, match="does not exist"):
        read_texts([tmp_path / "missing.jsonl"], max_texts=0, seed=13)
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RasidError, match="cannot read the --corpus file .*broken.json"):
        read_texts([tmp_path / "broken.json"], max_texts=0, seed=13)
    with pytest.raises(RasidError, match="no text found"):
        read_texts([tmp_path / "empty.txt"], max_texts=0, seed=13)
    with pytest.raises(RasidError, match="no checkpoint"):
        adapt(tiny_adapt(tmp_path, tiny_base, corpus, resume=True))
    assert main(["adapt", "--corpus", str(corpus), "--out", str(tmp_path / "x"), "--mask-probability", "2"]) == 2
    assert "--mask-probability must be in (0, 1)" in capsys.readouterr().err

"""rasid's data format: what a good row is, how bad rows are reported, how validation is split."""

from collections import Counter

import pytest

from serving.data_files import Row, read_rows
from serving.errors import DataError
from training.data import split_rows


def write(tmp_path, name, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_jsonl_rows_carry_text_target_and_one_label_per_task(tmp_path):
    path = write(
        tmp_path,
        "d.jsonl",
        '{"text": "نص", "target": "هدف", "stance": "Favor", "topic": null, "id": "a1"}\n\n'
        '{"text": "نص آخر", "topic": "sports", "claim": ""}\n',
    )
    rows = read_rows([path]).rows
    assert [(r.text, r.target, r.labels, r.where) for r in rows] == [
        ("نص", "هدف", {"stance": "Favor"}, f"{path}:1"),
        ("نص آخر", None, {"topic": "sports"}, f"{path}:3"),
    ]
    assert rows[0].extra == {"id": "a1"}


def test_csv_rows_with_the_same_columns_and_empty_cells_as_unlabelled(tmp_path):
    path = write(tmp_path, "d.csv", '\ufefftext,target,topic\r\n"سطر\r\nثان",,politics\r\nنص,هدف,\r\n')
    rows = read_rows([path]).rows
    assert [(r.text, r.target, r.labels, r.where) for r in rows] == [
        ("سطر\r\nثان", None, {"topic": "politics"}, f"{path}:2"),
        ("نص", "هدف", {}, f"{path}:4"),
    ]


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"topic": "sports"}', "no text"),
        ('{"text": "   ", "topic": "sports"}', "no text"),
        ('{"text": "نص", "topic": 3}', "label of task 'topic' must be a string"),
        ('{"text": "نص", "target": ["a"]}', "'target' must be a string"),
        ('{"text": "نص", ', "invalid JSON"),
        ('["نص"]', "must be a JSON object"),
    ],
)
def test_bad_jsonl_rows_are_reported_with_file_and_line(tmp_path, line, reason):
    path = write(tmp_path, "d.jsonl", '{"text": "جيد", "topic": "sports"}\n' + line + "\n")
    with pytest.raises(DataError) as error:
        read_rows([path])
    assert f"{path}:2: " in str(error.value) and reason in str(error.value)


def test_invalid_utf8_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, "d.jsonl", b'{"text": "ok", "topic": "a"}\n{"text": "\xff\xfe", "topic": "b"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid UTF-8"):
        read_rows([path])


def test_skip_bad_rows_keeps_the_good_ones_and_counts_the_bad(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "topic": "x"}\n{"topic": "y"}\n{"text": "b", "topic": "z"}\n')
    result = read_rows([path], skip_bad_rows=True)
    assert [r.text for r in result.rows] == ["a", "b"]
    assert result.skipped == [f"{path}:2: no text (the 'text' field is missing or empty)"]


def test_csv_row_with_too_many_fields_is_reported(tmp_path):
    path = write(tmp_path, "d.csv", "text,topic\nنص,sports,extra\n")
    with pytest.raises(DataError, match=r"d.csv:2: 3 fields, header has 2"):
        read_rows([path])


def test_unsupported_file_type_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="unsupported data file type '.txt'"):
        read_rows([write(tmp_path, "d.txt", "x")])
    with pytest.raises(DataError, match="no such data file"):
        read_rows([tmp_path / "absent.jsonl"])


def rows_in_groups(groups: dict[str, int], source="s") -> list[Row]:
    return [
        Row(text=f"{g}-{k}", target=None, labels={"topic": "a"}, where="f:1", group=g, extra={"source": source})
        for g, n in groups.items()
        for k in range(n)
    ]


def test_validation_split_keeps_each_group_on_one_side_and_is_reproducible():
    rows = rows_in_groups({f"claim{i}": 1 + i % 4 for i in range(40)})
    train, val = split_rows(rows, 0.2, seed=1)
    assert {r.group for r in train}.isdisjoint({r.group for r in val})
    assert len(train) + len(val) == len(rows)
    assert 0.15 * len(rows) <= len(val) <= 0.3 * len(rows)
    assert [r.text for r in split_rows(rows, 0.2, seed=1)[1]] == [r.text for r in val]


def test_rows_without_group_are_grouped_by_text_so_duplicates_never_straddle():
    rows = [Row(text=f"نص {i % 10}", target=None, labels={"topic": "a"}, where="f:1") for i in range(50)]
    train, val = split_rows(rows, 0.3, seed=3)
    assert {r.text for r in train}.isdisjoint({r.text for r in val})


def test_each_source_gives_its_share_of_validation():
    rows = rows_in_groups({f"a{i}": 1 for i in range(50)}, "big") + rows_in_groups(
        {f"b{i}": 1 for i in range(10)}, "small"
    )
    _, val = split_rows(rows, 0.2, seed=0)
    assert sum(r.extra["source"] == "small" for r in val) == 2
    assert sum(r.extra["source"] == "big" for r in val) == 10


def test_the_split_stratifies_by_label_and_keeps_every_class_in_training(caplog):
    rows = [
        Row(
            text=f"t{i}",
            target=None,
            labels={"topic": "common" if i % 10 else "rarer"},
            where=f"f:{i}",
            extra={"source": "s"},
        )
        for i in range(200)
    ]
    rows.append(
        Row(text="the only one", target=None, labels={"topic": "spiritual"}, where="f:201", extra={"source": "s"})
    )
    train, val = split_rows(rows, 0.15, seed=4)
    val_labels = Counter(r.labels["topic"] for r in val)
    assert "spiritual" in {r.labels["topic"] for r in train} and "spiritual" not in val_labels
    assert val_labels["rarer"] == 3 and 25 <= val_labels["common"] <= 27  # 15% of 20 and of 180
    assert "too rare to split" in caplog.text and "topic=spiritual" in caplog.text


def test_a_label_carried_by_two_groups_never_leaves_training_empty():
    rows = [
        Row(
            text=f"t{i}",
            target=None,
            labels={"topic": "x" if i < 2 else "y"},
            where=f"f:{i}",
            group=f"g{i}",
            extra={"source": "s"},
        )
        for i in range(12)
    ]
    for seed in range(20):
        train, val = split_rows(rows, 0.5, seed=seed)
        assert {"x", "y"} <= {r.labels["topic"] for r in train}


# Not blank, yet nothing for a model to read: diacritics, tatweel, NUL, zero-width and bidi controls.
NOTHING = [
    "\u064e\u0650\u0651",
    "\u0640\u0640",
    "\x00",
    "\u200b\u200c\ufeff",
    "\u202b\u2066\u200f",
    "\u064b \u200b\u0640",
]


@pytest.mark.parametrize("text", NOTHING)
def test_a_text_that_normalises_to_nothing_is_a_bad_row_with_file_and_line(tmp_path, text):
    import json

    path = write(
        tmp_path, "d.jsonl", '{"text": "جيد", "topic": "sports"}\n' + json.dumps({"text": text, "topic": "x"}) + "\n"
    )
    with pytest.raises(DataError) as error:
        read_rows([path])
    assert f"{path}:2: the text holds nothing to classify once normalised" in str(error.value)


def test_a_target_that_normalises_to_nothing_is_a_bad_row_and_skip_bad_rows_counts_it(tmp_path):
    path = write(tmp_path, "d.csv", "text,target,stance\nنص جيد,هدف,Favor\nنص آخر,\u064e\u200b,Against\n")
    with pytest.raises(DataError, match=r"d.csv:3: the target holds nothing to classify once normalised"):
        read_rows([path])
    result = read_rows([path], skip_bad_rows=True)
    assert [r.text for r in result.rows] == ["نص جيد"] and len(result.skipped) == 1


def test_rasid_predict_names_the_line_of_an_empty_after_normalisation_text(trained_bundle, tmp_path, capsys):
    from training.cli import main

    path = write(tmp_path, "in.jsonl", '{"text": "ارتفعت أسعار النفط"}\n{"text": "\\u0640\\u064e\\u200f"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(trained_bundle), "--input", str(path), "--output", str(out)]) == 2
    assert f"{path}:2: the text holds nothing to classify" in capsys.readouterr().err
    assert (
        main(["predict", "--model", str(trained_bundle), "--input", str(path), "--output", str(out), "--skip-bad-rows"])
        == 0
    )
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1

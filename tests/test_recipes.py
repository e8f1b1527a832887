"""`rasid prepare`: each recipe on hand-made files that reproduce its dataset's quirks, and its bad-row reports."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from serving.errors import DataError, RasidError
from training.cli import main
from training.prepare import prepare
from training.recipes.common import text_group

FIXTURES = Path(__file__).parent / "fixtures" / "recipes"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def copy_of(tmp_path):
    """A writable copy of one recipe's fixture folder, for tests that break a row."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(FIXTURES / name, tmp_path / name))

    return copy


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace text in a fixture copy, keeping its BOM and line ends byte for byte."""
    data = path.read_bytes()
    assert old.encode() in data, old
    path.write_bytes(data.replace(old.encode(), new.encode(), count))


# --- each recipe's rows ---------------------------------------------------------------------------------------


def test_mawqif_reads_bom_crlf_quoted_multiline_and_empty_stance_as_none(tmp_path):
    report = prepare("mawqif", FIXTURES / "mawqif", tmp_path / "m.jsonl")

    def row(id, text, target, stance, sentiment, sarcasm):
        return {
            "text": text,
            "target": target,
            "stance": stance,
            "sentiment": sentiment,
            "sarcasm": sarcasm,
            "id": f"mawqif:{id}",
            "group": text_group(text),
            "source": "mawqif",
        }

    assert read_jsonl(tmp_path / "m.jsonl") == [
        row(1, "تمكين المرأة خطوة رائعة، نفخر بها", "Women empowerment", "Favor", "Positive", "No"),
        row(2, "اللقاح ما أثق فيه\r\nوالله ما راح آخذه", "Covid Vaccine", "Against", "Negative", "No"),
        row(3, "التحول الرقمي موضوع يتكلمون عنه اليوم", "Digital Transformation", "None", "Neutral", "No"),
        row(4, "سمعت خبر عن اللقاح في الأخبار", "Covid Vaccine", "None", "Neutral", None),
        row(
            5,
            "يا سلام على التحول الرقمي، النظام معطل للمرة العاشرة",
            "Digital Transformation",
            "Against",
            "Negative",
            "Yes",
        ),
    ]
    assert report.rows == 5 and report.bad == []
    assert dict(report.labels["stance"]) == {"Favor": 1, "Against": 2, "None": 2}


def test_asnd_finds_columns_by_name_in_both_file_orders(tmp_path):
    report = prepare("asnd", FIXTURES / "asnd", tmp_path / "a.jsonl")

    def row(id, text, topic, split, platform):
        return {
            "text": text,
            "target": None,
            "topic": topic,
            "id": f"asnd:{id}",
            "group": text_group(text),
            "source": "asnd",
            "split": split,
            "platform": platform,
        }

    rows = read_jsonl(tmp_path / "a.jsonl")
    assert rows == [
        row("111", "الرئيس يلتقي وزير الخارجية في العاصمة\n#أخبار", "politics", "train", "twitter"),
        row("222_333", "فوز الفريق الوطني في المباراة النهائية", "sports", "train", "facebook"),
        row("444", "ارتفاع أسعار الذهب، والأسواق تترقب", "business-and-economy", "dev", "youtube"),
        row("555", "الرئيس يلتقي وزير الخارجية في العاصمة  #أخبار", "politics", "dev", "twitter"),
    ]
    # The same post in train and dev, spaced differently, shares a group so a split cannot separate them.
    assert rows[0]["group"] == rows[3]["group"] != rows[1]["group"]
    assert dict(report.labels["split"]) == {"train": 2, "dev": 2}


def test_ans_pairs_the_claim_headline_with_its_paraphrase(tmp_path):
    prepare("ans", FIXTURES / "ans", tmp_path / "a.jsonl")
    claim = "الحكومة تعلن خفض أسعار الوقود"
    assert read_jsonl(tmp_path / "a.jsonl") == [
        {
            "text": "الحكومة تقرر تخفيض سعر الوقود",
            "target": claim,
            "claim": "agree",
            "id": "ans:train:2",
            "group": text_group(claim),
            "source": "ans",
            "split": "train",
        },
        {
            "text": "الحكومة ترفع أسعار الوقود",
            "target": claim,
            "claim": "disagree",
            "id": "ans:train:3",
            "group": text_group(claim),
            "source": "ans",
            "split": "train",
        },
        {
            "text": "افتتاح معرض للسيارات",
            "target": "انطلاق مهرجان الكتاب، بمشاركة 20 دولة",
            "claim": "other",
            "id": "ans:train:4",
            "group": text_group("انطلاق مهرجان الكتاب، بمشاركة 20 دولة"),
            "source": "ans",
            "split": "train",
        },
        {
            "text": "خسارة المنتخب في البطولة",
            "target": "فوز المنتخب في البطولة",
            "claim": "disagree",
            "id": "ans:dev:2",
            "group": text_group("فوز المنتخب في البطولة"),
            "source": "ans",
            "split": "dev",
        },
    ]


def test_austr_reads_quotes_literally_in_a_crlf_tsv(tmp_path):
    prepare("austr", FIXTURES / "austr", tmp_path / "a.jsonl")
    rumor = 'عاجل: "إغلاق" المطار غدا'
    assert read_jsonl(tmp_path / "a.jsonl") == [
        {
            "text": "الهيئة: لا صحة لخبر إغلاق المطار",
            "target": rumor,
            "claim": "disagree",
            "id": "austr:101:901",
            "group": "101",
            "source": "austr",
        },
        {
            "text": 'قال "المتحدث إن جدول الرحلات لم يتغير',
            "target": rumor,
            "claim": "other",
            "id": "austr:101:902",
            "group": "101",
            "source": "austr",
        },
        {
            "text": "البلدية: افتتاح الجسر يوم الأحد",
            "target": "افتتاح جسر جديد الأسبوع القادم",
            "claim": "agree",
            "id": "austr:102:903",
            "group": "102",
            "source": "austr",
        },
    ]


CLAIM_R1 = "الجيش يسيطر على مدينة الرقة بعد معارك عنيفة"
CLAIM_V2 = "روسيا تعلن انسحاب قواتها من سوريا"


def baly_row(claim_id, target, text, stance, fold, row_id):
    return {
        "text": text,
        "target": target,
        "news_claim": stance,
        "id": f"baly:{row_id}",
        "group": claim_id,
        "source": "baly",
        "fold": fold,
    }


def test_baly_paragraphs_take_rationale_lines_else_the_lines_closest_to_the_claim(tmp_path):
    report = prepare("baly", FIXTURES / "baly", tmp_path / "b.jsonl")
    assert read_jsonl(tmp_path / "b.jsonl") == [
        baly_row(
            "R-1",
            CLAIM_R1,
            "أعلن الجيش اليوم أنه سيطر على مدينة الرقة بعد معارك عنيفة استمرت أسابيع .",
            "agree",
            1,
            "R-1:0:1",
        ),
        baly_row("R-1", CLAIM_R1, "نفت مصادر محلية أن يكون الجيش قد سيطر على مدينة الرقة .", "disagree", 1, "R-1:1:0"),
        baly_row(
            "R-1", CLAIM_R1, "وأكدت المصادر أن المعارك ما زالت مستمرة في أطراف المدينة .", "disagree", 1, "R-1:1:2"
        ),
        # The discuss article has no rationale line (as in the corpus): its line closest to the claim stands in.
        baly_row(
            "R-1",
            CLAIM_R1,
            "تقارير متضاربة حول الوضع في الرقة ، ولم يصدر تأكيد رسمي حتى الآن .",
            "discuss",
            1,
            "R-1:2:0",
        ),
        # Of the unrelated article, the two
        # long lines sharing most words with the claim (3 and 2 words; the oil line shares none, "طقس" is short).
        baly_row("R-1", CLAIM_R1, "معارك عنيفة في مدينة حلب أدت إلى نزوح آلاف الأسر .", "unrelated", 1, "R-1:3:2"),
        baly_row("R-1", CLAIM_R1, "الجيش يعلن حالة الطوارئ في مدينة حمص بسبب الفيضانات .", "unrelated", 1, "R-1:3:3"),
        baly_row("V-2", CLAIM_V2, "أعلنت روسيا سحب جزء من قواتها من سوريا .", "agree", 2, "V-2:0:2"),
    ]
    assert report.bad == []
    assert any("3 claim ids" in note and "no json" in note for note in report.info)  # V-6
    assert any("discuss 1" in note for note in report.info)


def test_baly_articles_give_one_row_per_claim_article_pair(tmp_path):
    prepare("baly", FIXTURES / "baly", tmp_path / "b.jsonl", granularity="articles")
    rows = read_jsonl(tmp_path / "b.jsonl")
    article = json.loads((FIXTURES / "baly/dataset/R-1.json").read_text(encoding="utf-8"))["article"]
    assert rows[2] == baly_row("R-1", CLAIM_R1, article[2], "discuss", 1, "R-1:2")
    assert [(row["id"], row["news_claim"], row["fold"]) for row in rows] == [
        ("baly:R-1:0", "agree", 1),
        ("baly:R-1:1", "disagree", 1),
        ("baly:R-1:2", "discuss", 1),
        ("baly:R-1:3", "unrelated", 1),
        ("baly:V-2:0", "agree", 2),
    ]


def test_baly_folds_and_negatives_per_article_options(tmp_path):
    report = prepare("baly", FIXTURES / "baly", tmp_path / "b.jsonl", folds="2,3", lines_per_article=1)
    assert [row["id"] for row in read_jsonl(tmp_path / "b.jsonl")] == ["baly:V-2:0:2"]
    assert report.info == []  # no id of folds 2-3 lacks its json
    prepare("baly", FIXTURES / "baly", tmp_path / "b.jsonl", folds="1", lines_per_article=1)
    assert [row["id"] for row in read_jsonl(tmp_path / "b.jsonl")][-1] == "baly:R-1:3:2"


# --- bad rows -------------------------------------------------------------------------------------------------

BROKEN = [  # recipe, file in the fixture, text to replace, replacement, expected "file:line: reason"
    (
        "mawqif",
        "Mawqif_AllTargets_Train.csv",
        "3,التحول الرقمي موضوع يتكلمون عنه اليوم",
        "3,",
        "Mawqif_AllTargets_Train.csv:5: empty text",
    ),  # line 5: the record of ID 2 spans lines 3-4
    (
        "mawqif",
        "Mawqif_AllTargets_Train.csv",
        "سمعت خبر عن اللقاح في الأخبار",
        "#NAME?",
        "Mawqif_AllTargets_Train.csv:6: text is a spreadsheet error value (#NAME?)",
    ),
    (
        "mawqif",
        "Mawqif_AllTargets_Train.csv",
        "Women empowerment,Favor",
        "Women empowerment,Favour",
        "Mawqif_AllTargets_Train.csv:2: unknown stance label 'Favour'",
    ),
    (
        "mawqif",
        "Mawqif_AllTargets_Train.csv",
        "Women empowerment,Favor,1,",
        "Women empowerment,Favor,",
        "Mawqif_AllTargets_Train.csv:2: expected 14 fields, found 13",
    ),
    (
        "asnd",
        "sm_news_ar_dev.csv",
        "business-and-economy",
        "economy",
        "sm_news_ar_dev.csv:2: unknown topic label 'economy'",
    ),
    ("ans", "stance/dev.csv", ",خسارة المنتخب في البطولة,", ",,", "dev.csv:2: empty text"),
    ("austr", "AuSTR_SNAM.tsv", "\tagree\t", "\tagree\textra\t", "AuSTR_SNAM.tsv:4: expected 6 fields, found 7"),
    ("austr", "AuSTR_SNAM.tsv", "\tdisagree\t", "\tdeny\t", "AuSTR_SNAM.tsv:2: unknown stance label 'deny'"),
    (
        "baly",
        "dataset/R-1.json",
        '"[1]"',
        '"[7]"',
        "R-1.json:article 0: rationale line 7 is out of range (the article has 3 lines)",
    ),
    ("baly", "dataset/R-1.json", '"[0, 2]"', '"line 2"', "R-1.json:article 1: unreadable rationale 'line 2'"),
    ("baly", "dataset/R-1.json", '"discuss"', '"neutral"', "R-1.json:article 2: unknown stance label 'neutral'"),
    (
        "baly",
        "dataset/V-2.json",
        '"fact": "false",',
        '"fact": "false"',
        "V-2.json:5: invalid JSON (Expecting ',' delimiter)",
    ),
    ("baly", "train_test_splits.txt", "Fold_2: V-2", "Fold_2: V-3", "V-2.json:1: claim V-2 is in no fold"),
]


@pytest.mark.parametrize("name, file, old, new, expected", BROKEN, ids=[case[4] for case in BROKEN])
def test_each_bad_row_is_named_by_file_and_line(copy_of, tmp_path, name, file, old, new, expected):
    source = copy_of(name)
    edit(source / file, old, new)
    with pytest.raises(DataError, match=r"1 bad row\(s\) in") as caught:
        prepare(name, source, tmp_path / "out.jsonl")
    assert expected in str(caught.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_invalid_utf8_is_a_bad_row_on_its_line(copy_of, tmp_path):
    source = copy_of("asnd")
    data = (source / "sm_news_ar_trn.csv").read_bytes()
    (source / "sm_news_ar_trn.csv").write_bytes(data.replace("فوز".encode(), b"\xff\xfe"))
    report = prepare("asnd", source, tmp_path / "a.jsonl", skip_bad_rows=True)
    assert [str(row) for row in report.bad] == [f"{source / 'sm_news_ar_trn.csv'}:4: invalid UTF-8"]
    assert report.rows == 3


def test_a_pair_repeated_with_another_label_is_bad_on_both_lines(copy_of, tmp_path):
    source = copy_of("austr")
    (source / "AuSTR_SNAM.tsv").write_bytes(
        (source / "AuSTR_SNAM.tsv").read_bytes() + "101\t901\tشائعة\tنفي\tagree\tFALSE\r\n".encode()
    )
    report = prepare("austr", source, tmp_path / "a.jsonl", skip_bad_rows=True)
    tsv = source / "AuSTR_SNAM.tsv"
    assert [str(row) for row in report.bad] == [
        f"{tsv}:2: id austr:101:901 appears again later with different values",
        f"{tsv}:5: same id austr:101:901 as {tsv}:2 but another text, target, claim",
    ]
    assert [row["id"] for row in read_jsonl(tmp_path / "a.jsonl")] == ["austr:101:902", "austr:102:903"]


def test_the_error_lists_twenty_bad_rows_and_the_total(copy_of, tmp_path):
    source = copy_of("ans")
    bad_lines = "".join(f"عنوان رقم {n},عنوان آخر,maybe\n" for n in range(25))
    (source / "stance/dev.csv").write_text("s1,s2,stance\n" + bad_lines, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        prepare("ans", source, tmp_path / "a.jsonl")
    message = str(caught.value)
    assert message.startswith("25 bad row(s) in ") and "fix them or pass --skip-bad-rows" in message
    assert message.endswith("\n  ... and 5 more")
    assert "dev.csv:21: unknown stance label 'maybe'" in message and "dev.csv:22:" not in message


def test_skip_bad_rows_writes_the_good_rows_and_counts_the_bad(copy_of, tmp_path, capsys, caplog):
    source = copy_of("mawqif")
    edit(source / "Mawqif_AllTargets_Train.csv", "سمعت خبر عن اللقاح في الأخبار", "")
    out = tmp_path / "m.jsonl"
    assert main(["prepare", "mawqif", "--source", str(source), "--out", str(out), "--skip-bad-rows"]) == 0
    assert [row["id"] for row in read_jsonl(out)] == ["mawqif:1", "mawqif:2", "mawqif:3", "mawqif:5"]
    printed = capsys.readouterr()
    assert "skipped 1 bad row(s)" in caplog.text and "Mawqif_AllTargets_Train.csv:6: empty text" in caplog.text
    assert "wrote 4 rows" in printed.out and "stance: Against 2, Favor 1, None 1" in printed.out
    assert "bad rows skipped: 1" in printed.out


def test_a_failed_run_leaves_the_previous_output_untouched_and_no_temporary_file(copy_of, tmp_path, capsys):
    out = tmp_path / "out" / "a.jsonl"
    prepare("austr", FIXTURES / "austr", out)
    before = out.read_bytes()
    source = copy_of("austr")
    edit(source / "AuSTR_SNAM.tsv", "\tagree\t", "\t\t")
    assert main(["prepare", "austr", "--source", str(source), "--out", str(out)]) == 2
    assert "1 bad row(s) in" in capsys.readouterr().err
    assert out.read_bytes() == before and sorted(p.name for p in out.parent.iterdir()) == ["a.jsonl"]


def test_csv_output_has_the_same_columns_with_empty_for_null(tmp_path):
    prepare("mawqif", FIXTURES / "mawqif", tmp_path / "m.jsonl")
    prepare("mawqif", FIXTURES / "mawqif", tmp_path / "m.csv")
    with open(tmp_path / "m.csv", encoding="utf-8", newline="") as stream:
        from_csv = list(csv.DictReader(stream))
    expected = [
        {key: "" if value is None else value for key, value in row.items()} for row in read_jsonl(tmp_path / "m.jsonl")
    ]
    assert from_csv == expected


def test_wrong_names_and_options_are_one_sentence_errors(copy_of, tmp_path):
    with pytest.raises(RasidError, match="no recipe 'sts'"):
        prepare("sts", FIXTURES / "ans", tmp_path / "a.jsonl")
    with pytest.raises(RasidError, match="recipe ans takes no option granularity"):
        prepare("ans", FIXTURES / "ans", tmp_path / "a.jsonl", granularity="articles")
    with pytest.raises(RasidError, match=r"\.jsonl or \.csv"):
        prepare("ans", FIXTURES / "ans", tmp_path / "a.json")
    with pytest.raises(DataError, match="sm_news_ar_trn.csv does not exist"):
        prepare("asnd", FIXTURES / "ans", tmp_path / "a.jsonl")
    source = copy_of("asnd")
    edit(source / "sm_news_ar_dev.csv", "ID,Content,Class", "ID,Content,Label")
    with pytest.raises(DataError, match="sm_news_ar_dev.csv has no column Class; its header is ID, Content, Label"):
        prepare("asnd", source, tmp_path / "a.jsonl")

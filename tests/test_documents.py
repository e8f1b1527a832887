"""Documents: paragraph splitting with offsets, the boilerplate filter both ways, and the verdict rules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from serving.abstention import UNCERTAIN
from serving.bundle import TaskSpec
from serving.documents import (
    RULE_MEAN,
    RULE_NEUTRAL,
    SKIP_REASONS,
    analyze_document,
    analyze_documents,
    char_budget,
    document_verdict,
    furniture_reason,
    is_boilerplate,
    recurring_lines,
    split_paragraphs,
)
from tests.samples import ARTICLE, CLAIM, STANCE, TOPIC

# A second article, written for this test: CRLF line ends, indentation, a cookie banner, a link line, a
# view counter, and two news paragraphs (one of them a two-word sentence).
SCRAPED = (
    "  Home | World | Business | Sport | Video\r\n"
    "نستخدم ملفات تعريف الارتباط لتحسين تجربتك على موقعنا\r\n"
    "\r\n"
    "   ارتفعت صادرات البلاد من التمور بنسبة كبيرة خلال العام الماضي بحسب بيانات رسمية.  \r\n"
    "684 مشاهدة\r\n"
    "https://example.com/news/1 #اقتصاد #تمور\r\n"
    "ارتفعت الأسعار.\r\n"
    "اقرأ أيضا\r\n"
    "Follow us on Twitter\r\n"
    "© 2024 جميع الحقوق محفوظة\r\n"
)


def test_article_paragraphs_map_back_to_the_text():
    paragraphs = split_paragraphs(ARTICLE)
    assert [p.text for p in paragraphs] == [
        "الرئيسية | أخبار | رياضة | اقتصاد",
        "شارك على فيسبوك",
        "أعلنت وزارة الاقتصاد اليوم عن خطة جديدة لدعم الشركات الصغيرة والمتوسطة بقروض ميسرة.",
        "وقال الوزير في مؤتمر صحفي إن الخطة تشمل إعفاءات ضريبية لمدة ثلاث سنوات.",
        "تابعونا على تويتر",
        "جميع الحقوق محفوظة",
    ]
    for p in paragraphs:
        assert ARTICLE[p.start : p.end] == p.text
    assert [is_boilerplate(p.text) for p in paragraphs] == [True, True, False, False, True, True]


def test_scraped_article_with_crlf_and_indentation():
    paragraphs = split_paragraphs(SCRAPED)
    for p in paragraphs:
        assert SCRAPED[p.start : p.end] == p.text and p.text == p.text.strip()
    kept = [p.text for p in paragraphs if not is_boilerplate(p.text)]
    assert kept == [
        "ارتفعت صادرات البلاد من التمور بنسبة كبيرة خلال العام الماضي بحسب بيانات رسمية.",
        "ارتفعت الأسعار.",
    ]


def test_long_block_is_cut_at_sentence_ends_within_budget():
    sentences = [f"هذه هي الجملة رقم {i} في فقرة طويلة جدا من مقال إخباري." for i in range(30)]
    text = "مقدمة\n\n" + " ".join(sentences) + "\n"
    paragraphs = split_paragraphs(text, max_chars=200)
    assert len(paragraphs) > 5
    for p in paragraphs:
        assert text[p.start : p.end] == p.text
        assert len(p.text) <= 200
    assert all(p.text.endswith(".") for p in paragraphs[1:])  # cut at sentence ends, not inside one
    covered = " ".join(p.text for p in paragraphs[1:])
    assert covered == " ".join(sentences)  # nothing lost, nothing repeated


def test_sentence_longer_than_budget_is_cut_at_spaces():
    text = " ".join(["كلمة"] * 100)
    paragraphs = split_paragraphs(text, max_chars=50)
    assert all(len(p.text) <= 50 and text[p.start : p.end] == p.text for p in paragraphs)
    assert " ".join(p.text for p in paragraphs) == text


def test_char_budget_leaves_room_for_the_target():
    assert char_budget(128) > char_budget(128, target="ادعاء طويل " * 5) >= 80
    assert char_budget(8, target="x" * 500) == 80


@pytest.mark.parametrize(
    "line",
    [
        "الرئيسية | أخبار | رياضة | اقتصاد",
        "شارك على فيسبوك",
        "شارك",
        "مشاركة الخبر عبر واتساب",
        "تابعونا على تويتر",
        "تابع الجديد على فيسبوك",
        "جميع الحقوق محفوظة",
        "كل الحقوق محفوظة © 2023",
        "نستخدم ملفات تعريف الارتباط (الكوكيز) لتحسين تجربتك",
        "We use cookies to improve your experience.",
        "Share on Facebook",
        "Follow us",
        "All rights reserved.",
        "Home • News • Sport • Contact",
        "https://t.co/abc #عاجل #الجزيرة",
        "@user @other",
        "اقرأ أيضا",
        "أخبار ذات صلة",
        "الرئيسية",
        "منذ 17 ساعة منذ 15 ساعة",
        "16 : 42 27 كانون الأول 3 , 684 مشاهدة",
        "14 : 44",
        ". . . . . .",
        "",
        "   ",
        "سياسة الخصوصية",
        "اشترك في النشرة البريدية",
        "المنطقة .",
        "2018 .",
        "Your browser does not support the video tag .",
        "الرجاء إدخال بريدك الإلكتروني",
    ],
)
def test_boilerplate_lines_are_dropped(line):
    assert is_boilerplate(line)


@pytest.mark.parametrize(
    "line",
    [
        *(t for t, _ in TOPIC),
        *(t for _, t, _ in STANCE + CLAIM),
        "استقال الوزير.",
        "انفجار في بغداد",
        "قتل ثلاثة أشخاص في انفجار",
        "شارك الوزير في المؤتمر الدولي للطاقة في الرياض",  # "شارك" as a verb, not a button
        "تابع الرئيس الاجتماع من مكتبه في القصر",  # "تابع" as a verb
        "حذرت الحكومة من بيانات مزيفة تنتشر على فيسبوك وتويتر منذ أيام",  # mentions networks, is news
        "The minister resigned on Monday.",
        "نما الاقتصاد 3 % في 2023 .",
    ],
)
def test_news_sentences_are_kept(line):
    assert not is_boilerplate(line)


# --- page furniture: the line rules and the lines recurring across an input ----------------------------

# Written for this test after the kind of page the issue was filed on (a scraped article about the SDF, the
# coalition and Turkey): a see-also link, a tags line and a copyright line between the news paragraphs.
SEED_LIKE = (
    "قوات سوريا الديمقراطية تعلن السيطرة على قرى جديدة شرق الفرات\n"
    "أعلنت قوات سوريا الديمقراطية المدعومة من التحالف الدولي سيطرتها على ثلاث قرى جديدة بعد معارك مع تنظيم داعش.\n"
    "شاهد أيضاً : تركيا تحشد قواتها على الحدود مع سوريا\n"
    "وقال متحدث باسم التحالف إن الدعم الجوي سيستمر رغم التهديدات التركية بشن عملية عسكرية في المنطقة.\n"
    "الوسوم: قسد, التحالف الدولي, تركيا, سوريا\n"
    "حقوق النشر محفوظة\n"
)


def test_the_seed_like_article_drops_see_also_tags_and_copyright_each_with_its_reason():
    predictor = ScriptedPredictor([TOPIC_SPEC], {p.text: {"topic": [0.6, 0.4]} for p in split_paragraphs(SEED_LIKE)})
    result = analyze_document(predictor, SEED_LIKE)
    assert [(s["text"], s["reason"]) for s in result["skipped"]] == [
        ("شاهد أيضاً : تركيا تحشد قواتها على الحدود مع سوريا", "see-also"),
        ("الوسوم: قسد, التحالف الدولي, تركيا, سوريا", "tags"),
        ("حقوق النشر محفوظة", "copyright"),
    ]
    assert len(result["paragraphs"]) == 3 and all(
        SEED_LIKE[s["start"] : s["end"]] == s["text"] for s in result["skipped"]
    )
    assert all(s["reason"] in SKIP_REASONS for s in result["skipped"])


@pytest.mark.parametrize(
    "line, reason",
    [
        ("شاهد أيضاً : تركيا تحشد قواتها على الحدود مع سوريا", "see-also"),
        ("اقرأ أيضا", "see-also"),
        ("إقرأ أيضاً: الجيش يعلن السيطرة على المدينة", "see-also"),
        ("اقرأ المزيد", "see-also"),
        ("مواضيع ذات صلة", "see-also"),
        ("أخبار متعلقة", "see-also"),
        ("الأكثر قراءة", "see-also"),
        ("Read more: Turkey masses troops on the border", "see-also"),
        ("See also", "see-also"),
        ("Related articles", "see-also"),
        ("الوسوم: قسد, التحالف الدولي", "tags"),
        ("كلمات مفتاحية : سوريا تركيا", "tags"),
        ("Tags: Syria, SDF", "tags"),
        ("حقوق النشر محفوظة", "copyright"),
        ("جميع الحقوق محفوظة لموقع الخبر 2018", "copyright"),
        ("© 2024 Example News. All rights reserved.", "copyright"),
        ("اشترك في النشرة البريدية", "subscribe"),
        ("Subscribe to our newsletter", "subscribe"),
        ("شارك على فيسبوك", "share"),
        ("Share on Twitter", "share"),
        ("تابعونا على تويتر", "share"),
        ("أضف تعليقك", "comments"),
        ("Leave a comment", "comments"),
        ("12 Comments", "comments"),
        ("نستخدم ملفات تعريف الارتباط لتحسين تجربتك", "cookies"),
        ("We use cookies to improve your experience.", "cookies"),
        ("المقالات المنشورة تعبر عن رأي أصحابها", "disclaimer"),
        ("Home | World | Business | Sport | Video", "menu"),
        ("https://t.co/abc #عاجل #الجزيرة", "links"),
        ("16 : 42 27 / 12 / 2018", "no-text"),
        ("الرئيسية", "site"),
        ("المنطقة .", "too-short"),
    ],
)
def test_each_kind_of_furniture_has_its_reason(line, reason):
    assert furniture_reason(line) == reason


def test_a_flattened_footer_is_furniture_however_long_and_a_news_line_quoting_one_phrase_is_not():
    footer = (
        "المصدر الجزيرة مباشر رويترز كلمات مفتاحية اقرأ أيضا الأكثر قراءة Secondary navigation التذييل "
        "شاركوا في النقاش عبر صفحتنا على فيسبوك واشترك في النشرة البريدية لتصلك آخر الأخبار يوميا جميع "
        "الحقوق محفوظة 2017 شبكة الجزيرة الإعلامية"
    )
    assert len(footer) > 160 and furniture_reason(footer) == "furniture-run"
    news = (
        "وقال المتحدث باسم الحكومة في مؤتمر صحفي إن الوزارة نشرت تفاصيل الخطة على صفحتها الرسمية، وإن جميع "
        "الحقوق المالية للمتضررين محفوظة وستصرف خلال الأسابيع المقبلة بعد انتهاء عمليات الحصر في المحافظات."
    )
    assert furniture_reason(news) is None


def test_a_see_also_label_followed_by_an_article_sentence_is_kept():
    # scrapers drop the link and leave the label: the sentence after it is the article's own
    assert furniture_reason("اقرأ أيضا : قال الوزير في مؤتمر صحفي إن الخطة ستبدأ الشهر المقبل .") is None


MENU, FOOTER = "الرئيسية أخبار سياسة اقتصاد رياضة فيديو", "موقع الخبر اليومي منصة إخبارية مستقلة منذ 2011"


def site_page(k: int) -> str:
    """A page of one site: the same menu and footer around its own two news paragraphs."""
    return (
        f"{MENU}\nأعلنت الحكومة اليوم الخطة رقم {k} لدعم المزارعين في المحافظات الشمالية بقروض ميسرة.\n"
        f"وقال الوزير إن المرحلة {k} من المشروع تبدأ بعد شهرين وتشمل آلاف الأسر في الأرياف.\n{FOOTER}"
    )


def test_lines_recurring_across_the_documents_of_an_input_are_furniture():
    pages = [site_page(k) for k in range(6)]
    assert furniture_reason(MENU) is None and furniture_reason(FOOTER) is None  # neither looks like furniture alone
    assert recurring_lines(pages) == {MENU, FOOTER}
    script = {p.text: {"topic": [0.7, 0.3]} for page in pages for p in split_paragraphs(page)}
    results = analyze_documents(ScriptedPredictor([TOPIC_SPEC], script), pages)
    for result in results:
        assert [(s["text"], s["reason"]) for s in result["skipped"]] == [(MENU, "recurring"), (FOOTER, "recurring")]
        assert len(result["paragraphs"]) == 2


def test_recurrence_needs_enough_otherwise_different_documents():
    assert recurring_lines([site_page(k) for k in range(4)]) == set()  # fewer pages than RECURRING_MIN_DOCUMENTS
    assert recurring_lines([site_page(0)]) == set()  # one /v1/analyze article has no recurring lines
    # the same story collected six times (syndicated or re-scraped: only its last line differs) is one story
    # whose sentences stay news
    story = site_page(1).split("\n")[1:3]
    copies = ["\n".join([*story, f"نشر على الموقع رقم {k} من شبكة المواقع الإخبارية الكبرى"]) for k in range(6)]
    assert recurring_lines(copies) == set()


def test_a_caller_splitting_an_input_passes_the_recurring_lines_of_the_whole_input():
    pages = [site_page(k) for k in range(6)]
    script = {p.text: {"topic": [0.7, 0.3]} for page in pages for p in split_paragraphs(page)}
    alone = analyze_documents(ScriptedPredictor([TOPIC_SPEC], script), pages[:2])  # two pages: nothing recurs
    assert [s["reason"] for s in alone[0]["skipped"]] == []
    chunk = analyze_documents(ScriptedPredictor([TOPIC_SPEC], script), pages[:2], recurring=recurring_lines(pages))
    assert [s["reason"] for s in chunk[0]["skipped"]] == ["recurring", "recurring"]


# --- verdict rules, on a predictor double whose answers are set per paragraph ----------------------------


def _answer(labels, probabilities):
    best = max(range(len(labels)), key=lambda k: probabilities[k])
    return {"label": labels[best], "score": probabilities[best], "scores": dict(zip(labels, probabilities))}


class ScriptedPredictor:
    """Answers each paragraph from a dict keyed by its text; records the calls to predict_items."""

    def __init__(self, tasks: list[TaskSpec], script: dict[str, dict[str, list[float]]], max_length=128):
        self.manifest = SimpleNamespace(
            tasks=tasks, max_length=max_length, task=lambda name: next(t for t in tasks if t.name == name)
        )
        self.script = script
        self.calls = []

    def check_tasks(self, tasks):
        return [t.name for t in self.manifest.tasks] if tasks is None else list(tasks)

    def predict_items(self, items, tasks=None, abstain_below=None, progress=None):
        self.calls.append(list(items))
        results = []
        for item in items:
            predictions, skipped = {}, []
            for spec in self.manifest.tasks:
                if tasks is not None and spec.name not in tasks:
                    continue
                if spec.input == "pair" and not item.target:
                    skipped.append(spec.name)
                    continue
                predictions[spec.name] = _answer(list(spec.labels), self.script[item.text][spec.name])
            results.append(SimpleNamespace(predictions=predictions, truncated=False, skipped_tasks=skipped))
        return results


CLAIM_SPEC = TaskSpec("claim", ("agree", "disagree", "discuss", "unrelated"), "pair")
TOPIC_SPEC = TaskSpec("topic", ("economy", "sports"), "single")
P1 = "أعلنت وزارة الاقتصاد اليوم عن خطة جديدة لدعم الشركات الصغيرة والمتوسطة بقروض ميسرة."
P2 = "وقال الوزير في مؤتمر صحفي إن الخطة تشمل إعفاءات ضريبية لمدة ثلاث سنوات."


def test_claim_verdict_is_the_most_confident_non_neutral_paragraph():
    script = {
        P1: {"claim": [0.05, 0.05, 0.1, 0.8], "topic": [0.9, 0.1]},
        P2: {"claim": [0.6, 0.1, 0.2, 0.1], "topic": [0.2, 0.8]},
    }
    predictor = ScriptedPredictor([CLAIM_SPEC, TOPIC_SPEC], script)
    result = analyze_document(predictor, ARTICLE, target="خطة لدعم الشركات")
    assert len(predictor.calls) == 1 and len(predictor.calls[0]) == 2  # one batched call
    claim = result["predictions"]["claim"]
    assert (claim["label"], claim["score"], claim["rule"]) == ("agree", 0.6, RULE_NEUTRAL)
    topic = result["predictions"]["topic"]
    weights = len(P1), len(P2)
    expected = (0.9 * weights[0] + 0.2 * weights[1]) / sum(weights)
    assert topic["rule"] == RULE_MEAN and topic["label"] == "economy"
    assert topic["score"] == pytest.approx(expected)
    assert sum(topic["scores"].values()) == pytest.approx(1.0)
    assert [p["text"] for p in result["paragraphs"]] == [P1, P2]
    for p in result["paragraphs"] + result["skipped"]:
        assert ARTICLE[p["start"] : p["end"]] == p["text"]
    assert [s["reason"] for s in result["skipped"]] == ["menu", "share", "share", "copyright"]
    assert result["truncated"] is False and result["empty"] is False


def test_all_neutral_paragraphs_give_the_neutral_label_with_mean_score():
    script = {P1: {"claim": [0.1, 0.0, 0.1, 0.8]}, P2: {"claim": [0.2, 0.1, 0.1, 0.6]}}
    result = analyze_document(ScriptedPredictor([CLAIM_SPEC], script), ARTICLE, target="ادعاء")
    claim = result["predictions"]["claim"]
    assert claim["label"] == "unrelated" and claim["score"] == pytest.approx(0.7)
    assert claim["scores"]["agree"] == pytest.approx(0.15)


def test_abstention_and_missing_target():
    script = {
        P1: {"claim": [0.4, 0.3, 0.2, 0.1], "topic": [0.55, 0.45]},
        P2: {"claim": [0.1, 0.1, 0.1, 0.7], "topic": [0.5, 0.5]},
    }
    predictor = ScriptedPredictor([CLAIM_SPEC, TOPIC_SPEC], script)
    result = analyze_document(predictor, ARTICLE, target="ادعاء", abstain_below=0.6)
    assert result["predictions"]["claim"]["label"] == UNCERTAIN  # best non-neutral paragraph has only 0.4
    assert result["predictions"]["topic"]["label"] == UNCERTAIN
    assert result["paragraphs"][1]["predictions"]["claim"]["label"] == "unrelated"  # 0.7 >= 0.6
    no_target = analyze_document(predictor, ARTICLE)
    assert set(no_target["predictions"]) == {"topic"} and no_target["skipped_tasks"] == ["claim"]


def test_document_of_boilerplate_only_is_empty_not_guessed():
    predictor = ScriptedPredictor([TOPIC_SPEC], {})
    result = analyze_document(predictor, "شارك على فيسبوك\nتابعونا على تويتر\n\nجميع الحقوق محفوظة")
    assert result["empty"] is True and result["predictions"] == {} and result["paragraphs"] == []
    assert len(result["skipped"]) == 3 and predictor.calls == []
    assert analyze_document(predictor, "")["empty"] is True


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown verdict rule"):
        document_verdict(["a", "b"], [_answer(["a", "b"], [0.6, 0.4])], [1], "vote")


def test_analyze_with_a_real_bundle(trained_bundle):
    from serving.predictor import Predictor

    predictor = Predictor.from_bundle(trained_bundle)
    result = analyze_document(predictor, ARTICLE, target="خطة لدعم الشركات")
    assert set(result["predictions"]) == set(predictor.task_names)
    for task, verdict in result["predictions"].items():
        # target_seen: pair tasks whose bundle lists its training targets (tests/test_targets.py)
        closed = predictor.manifest.known_targets(task) is not None
        assert set(verdict) == {"label", "score", "scores", "rule"} | ({"target_seen"} if closed else set())
        assert verdict["label"] in predictor.manifest.task(task).labels
    assert len(result["paragraphs"]) == 2 and len(result["skipped"]) == 4


def test_documents_module_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, serving.documents; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

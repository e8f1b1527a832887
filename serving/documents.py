"""Whole documents (news articles): split into paragraphs, drop boilerplate, classify, give one verdict.

Document verdict rules (`VERDICT_RULES`), per task:
  most-confident-non-neutral  pair tasks whose labels include a neutral one ("unrelated", "other", "others",
                              "none", case-insensitive; e.g. claim stance, target stance): the verdict is
                              the prediction of the most confident paragraph whose label is not the neutral
                              one (an article agrees with a claim if one paragraph clearly does, however
                              many paragraphs talk about something else). If every paragraph says neutral,
                              the verdict is the neutral label, its score the mean neutral probability and
                              its scores the mean probability vectors.
  length-weighted-mean        every other task (single-input tasks such as topic, and pair tasks without a
                              neutral label): the paragraphs' probability vectors averaged with weights
                              proportional to paragraph length in characters, then argmax.
  learned                     a task for which the bundle carries a verdict model fitted on labelled articles
                              (serving/verdict.py; `rasid fuse --documents`), when a target is given.
With `abstain_below`, a verdict (or paragraph) whose score is below it is labelled "uncertain"; with
`abstain_unseen_targets`, so is one whose target the bundle never saw in training (`target_seen`: false).
A document with no usable paragraph (empty, or all boilerplate) gets `"predictions": {}` and
`"empty": true`; nothing is guessed.

Page furniture (menus, share buttons, copyright, see-also links, tags, ...) is skipped and listed in
"skipped" with its reason (`SKIP_REASONS`): `furniture_reason` judges each line alone, and `recurring_lines`
finds the lines shared by many documents of one input (a site's menu and footer on each of its pages).

Pure Python: no torch import; the predictor passed in does the model work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from serving.abstention import abstain
from serving.normalize import normalize

NEUTRAL_LABELS = ("unrelated", "other", "others", "none")
RULE_NEUTRAL = "most-confident-non-neutral"
RULE_MEAN = "length-weighted-mean"
VERDICT_RULES = {
    RULE_NEUTRAL: "pair task with a neutral label: the most confident paragraph whose label is not neutral; "
    "if none, the neutral label with the mean neutral probability",
    RULE_MEAN: "paragraph probability vectors averaged, weighted by paragraph length in characters; argmax",
}

# Characters per model token for Arabic news under an XLM-R-style sentencepiece vocabulary is about 4;
# 3.5 leaves room for the special tokens and for denser text (numbers, Latin names).
CHARS_PER_TOKEN = 3.5
MIN_PARAGRAPH_CHARS = 80  # never make the budget smaller than this, however long the target
DEFAULT_MAX_CHARS = int(128 * CHARS_PER_TOKEN)  # 448 characters for the default 128-token window


@dataclass(frozen=True)
class Paragraph:
    text: str  # exactly original[start:end]
    start: int
    end: int


def char_budget(max_length: int, target: str | None = None) -> int:
    """Characters of text that fit a `max_length`-token window beside `target` (pair tasks share it)."""
    budget = int(max_length * CHARS_PER_TOKEN) - (len(target) if target else 0)
    return max(MIN_PARAGRAPH_CHARS, budget)


# --- splitting -------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?؟…۔]+[\"'»”)]*\s+")


def split_paragraphs(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[Paragraph]:
    """Non-blank lines of `text`, stripped, as paragraphs with offsets into `text`.

    Blank lines and single newlines both separate paragraphs (scraped articles use either). A line longer
    than `max_chars` is cut at sentence ends into pieces of at most `max_chars`; a single sentence longer
    than that is cut at the last space before the limit (or hard, if it has none).
    """
    paragraphs = []
    for match in re.finditer(r"[^\n\r]+", text):
        line = match.group()
        stripped = line.strip()
        if not stripped:
            continue
        start = match.start() + (len(line) - len(line.lstrip()))
        for piece_start, piece_end in _pieces(text, start, start + len(stripped), max_chars):
            paragraphs.append(Paragraph(text[piece_start:piece_end], piece_start, piece_end))
    return paragraphs


def _pieces(text: str, start: int, end: int, max_chars: int):
    """(start, end) spans covering text[start:end], each at most max_chars long, cut at sentence ends."""
    if end - start <= max_chars:
        yield start, end
        return
    sentences, position = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        sentences.append((position, match.end()))
        position = match.end()
    if position < end:
        sentences.append((position, end))
    chunk_start = chunk_end = None
    for s_start, s_end in sentences:
        if chunk_start is not None and s_end - chunk_start <= max_chars:
            chunk_end = s_end
            continue
        if chunk_start is not None:
            yield from _stripped(text, chunk_start, chunk_end)
        chunk_start, chunk_end = s_start, s_end
        while chunk_end - chunk_start > max_chars:  # one sentence too long: cut at a space
            cut = text.rfind(" ", chunk_start + 1, chunk_start + max_chars + 1)
            cut = cut if cut > chunk_start else chunk_start + max_chars
            yield from _stripped(text, chunk_start, cut)
            chunk_start = cut
    if chunk_start is not None:
        yield from _stripped(text, chunk_start, chunk_end)


def _stripped(text: str, start: int, end: int):
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


# --- page furniture --------------------------------------------------------------------------------------

_NETWORKS = (
    r"(?:فيسبوك|فيس ?بوك|الفيسبوك|الفيس ?بوك|تويتر|تويتّر|إكس|واتساب|واتس ?اب|الواتساب|تلغرام|التلغرام|تيليجرام|"
    r"تليجرام|التلجرام|انستغرام|إنستغرام|انستجرام|إنستجرام|يوتيوب|اليوتيوب|لينكد ?إن|تيك ?توك|سناب ?شات|جوجل|"
    r"البريد الإلكتروني|البريد الالكتروني|facebook|twitter|whatsapp|telegram|instagram|youtube|"
    r"linkedin|tiktok|snapchat|pinterest|e-?mail|x)"
)
_ALSO = r"(?:أيضا|أيضاً|ايضا|ايضاً|أيضًا|كذلك)"

# Why a paragraph was not classified: the `reason` of each entry of a result's "skipped".
SKIP_REASONS = {
    "share": "share or follow buttons (شارك, تابعونا على فيسبوك, Share on Twitter)",
    "copyright": "a copyright line (جميع الحقوق محفوظة, حقوق النشر محفوظة, ©, All rights reserved)",
    "cookies": "a cookie or privacy banner, terms of use",
    "see-also": "a see-also / read-also link or a related-links heading (شاهد أيضاً, اقرأ أيضا, مواضيع ذات صلة, "
    "Read more)",
    "tags": "a tags line (الوسوم:, كلمات مفتاحية, Tags:)",
    "subscribe": "newsletter, sign-up and log-in forms (اشترك في النشرة, بريدك الإلكتروني, Subscribe)",
    "comments": "comment forms and counters, polls (أضف تعليق, التعليقات, 12 comments)",
    "disclaimer": "a disclaimer (المقالات تعبر عن رأي أصحابها, not responsible for external content)",
    "site": "print / advertisement / home / contact buttons, view counters, player and script notices",
    "menu": "a run of short items between separators (Home | World | Sport)",
    "furniture-run": "a long line made mostly of the phrases above (a flattened page header or footer)",
    "links": "mostly links, hashtags or handles",
    "no-text": "mostly digits and symbols (dates, times, counters, rows of dots)",
    "too-short": "fewer than three words and no sentence end",
    "recurring": "a line found in many other documents of the same input (menus, footers); see recurring_lines",
}

# Phrases that make a short line furniture (a long line may quote them, so they only count up to
# FURNITURE_MAX_CHARS), by reason. Written from the Baly pages of the development half (benchmarks/furniture.py).
_PHRASES = {
    "share": [
        r"تابعونا|تابعنا|تابعوا\s+(?:\S+\s+)?(?:على|عبر)|تواصلوا\s+معنا|تابع\s+\S+(?:\s+\S+)?\s+(?:على|عبر)\s+"
        + _NETWORKS,
        r"^(?:شارك|شاركها|شاركوا|مشاركة|انشر|أرسل|ارسل|غرّد|غرد)(?:\s+(?:الخبر|المقال|الموضوع|هذا|هذه|القصة))*"
        r"(?:\s*(?:على|عبر|في|مع)?\s*" + _NETWORKS + r")*\s*[:.!]?$",
        r"(?:شارك|انشر|مشاركة)\s+(?:على|عبر)\s+"
        + _NETWORKS
        + r"|(?:شارك|أرسل)\s+(?:هذا\s+)?(?:المقال|الخبر)\s+(?:مع|إلى)",
        r"(?:صفحتنا|قناتنا|حسابنا)\s+(?:على|في)|(?<!\w)(?:ال)?تواصل\s+معنا|اتصل\s+بنا|متابعون\s+آخرين|معجبون\s+بهذه",
        r"\b(?:share|tweet|follow us|like us)\b|(?:share|follow) (?:on|us)|pin it",
    ],
    "copyright": [
        r"(?:جميع|كل|كافة)\s+(?:ال)?حقوق|حقوق\s+(?:ال)?(?:نشر|طبع|تأليف|ملكية)|الحقوق\s+(?:\S+\s+)?محفوظة|"
        r"حقوق(?:\s+\S+){0,3}\s+محفوظة",
        r"all rights? (?:reserved|preserved)|copyright|©|\(\s*c\s*\)\s*(?:19|20)\d\d|licensed under",
    ],
    "cookies": [
        r"ملفات\s+(?:تعريف\s+)?الارتباط|الكوكيز|كوكيز|\bcookies?\b",
        r"سياسة\s+الخصوصية|شروط\s+(?:ال)?(?:استخدام|خدمة)|privacy policy|terms of (?:use|service)",
    ],
    "see-also": [
        r"^(?:related|more from|recommended|you may (?:also )?like)\b",
        r"(?:أخبار|مواضيع|موضوعات|مقالات|مواد|عناوين|روابط|قصص)\s+(?:ذات\s+(?:صلة|علاقة)|متعلقة|مشابهة|مرتبطة|أخرى)",
        r"الأكثر\s+(?:قراءة|مشاهدة|تداولا|مشاركة|تعليقا)|الاكثر\s+(?:قراءة|مشاهدة)|(?:قد|ربما)\s+يعجبك|قد\s+(?:يهمك|تهمك)|"
        r"اختيارات\s+المحرر|آخر\s+الأخبار|أحدث\s+(?:الأخبار|المقالات)|مقالات\s+أخرى\s+للكاتب|most (?:read|viewed|popular)|"
        r"الأكثر\s+زيارة|الاكثر\s+زيارة|ينال\s+إعجابك|(?:أجدد|أحدث)\s+المقالات",
    ],
    "tags": [
        r"^(?:ال)?وسوم\b|(?<!\w)(?:ال)?كلمات\s+(?:ال)?(?:مفتاحية|دلالية)|^(?:tags|keywords|tagged|filed under)\s*:",
    ],
    "subscribe": [
        r"اشترك\s+(?:الآن\s+)?(?:في|ب|معنا)\s*|(?:النشرة|القائمة)\s+(?:البريدية|الإخبارية|الاخبارية)|نشرتنا|newsletter|"
        r"\bsubscribe\b|sign (?:up|in)|log ?in\b|تسجيل\s+(?:الدخول|الخروج)|إنشاء\s+حساب|كلمة\s+(?:السر|المرور)|"
        r"بريدك\s+(?:الإلكتروني|الالكتروني)|عنوان\s+البريد|أدخل\s+(?:بريدك|عنوان)",
    ],
    "comments": [
        r"أضف\s+تعليق|اضف\s+تعليق|أضف\s+تعليقك|(?:انشر|اكتب|شارك)\s+تعليقك|لا\s+توجد\s+تعليقات|التعليقات\s+(?:المنشورة|مغلقة)|"
        r"استطلاع(?:\s+رأي)?\b|هل\s+تؤيد|جاري\s+التحميل|\d[\d,.]*\s*(?:تعليق|تعليقات|comments)\b|"
        r"(?:إيقاف|إغلاق)\s+التعليقات|تعليقات\s+(?:الفيس\s*بوك|فيسبوك)|(?:leave|post|add) a (?:comment|reply)|no comments",
    ],
    "disclaimer": [
        r"(?:تمثل|تعبر\s+عن|تعب\s*-*\s*ر\s+(?:بالضرورة\s+)?عن)\s+رأي\s+(?:كتابها|كاتبها|أصحابها|صاحبها)|"
        r"لا\s+(?:تعبر|تمثل|تعكس)\s+(?:بالضرورة\s+)?(?:عن\s+)?(?:رأي|وجهة\s+نظر|سياسة)|"
        r"(?:ليست|ليس|غير)\s+مسؤول(?:ة)?\s+عن\s+(?:محتوى|صحة)",
    ],
    "site": [
        r"\d[\d,.]*\s*(?:مشاهدة|مشاهدات|قراءة|views)\b|^(?:منذ\s+\d+\s+\S+\s*)+$|^(?:قبل\s+\S+(?:\s+\S+)?\s*)+$",
        r"^(?:طباعة|print|أضف تعليق|اضف تعليق|التعليقات|تعليقات|comments?|إعلان|إعلانات|advertisement|الرئيسية|"
        r"home|اتصل بنا|من نحن|contact us|about us|حجم الخط|البحث|search|menu|القائمة)\s*[:.]?$",
        r"your browser|javascript|\{\s*[*|#{]|powered by|designed by|developed by|تصميم\s+و\s*تطوير|برمجة\s+وتطوير|"
        r"طباعة\s+الرابط|(?<!\w)عن\s+الموقع\b|"
        r"المستعرض\s+لا\s+يدعم|لا\s+يدعم\s+(?:تشغيل\s+)?الفيديو",
    ],
}
_SHORT_RULES = [(reason, re.compile("|".join(patterns), re.IGNORECASE)) for reason, patterns in _PHRASES.items()]
_ALL_PHRASES = re.compile(
    "|".join(f"(?:{p})" for patterns in _PHRASES.values() for p in patterns if not p.startswith("^")), re.IGNORECASE
)
FURNITURE_MAX_CHARS = 160  # longer lines that merely mention "follow us" are kept: they may carry news
# Lines that open with a see-also / tags label are furniture up to this length whatever follows (a headline or
# a list of tags), unless a see-also label is followed by a sentence of the article (see furniture_reason).
LABELLED_MAX_CHARS = 300
_LABELLED = [
    (
        "see-also",
        re.compile(
            r"^[\W_]*(?:(?:اقرأ|إقرأ|اقرا|إقرا|شاهد|طالع|تابع|اطلع)\s+(?:" + _ALSO + r"|المزيد)|"
            r"read (?:also|more)|see also|also read)(?!\w)\s*[:：\-–—]?",
            re.IGNORECASE,
        ),
    ),
    (
        "tags",
        re.compile(
            r"^[\W_]*(?:(?:ال)?وسوم|(?:ال)?كلمات\s+(?:ال)?(?:مفتاحية|دلالية)|tags|keywords)\s*[:：]", re.IGNORECASE
        ),
    ),
]
# A long line is furniture when such phrases are dense in it: a flattened footer ("الأكثر قراءة ... اشترك في
# النشرة ... جميع الحقوق محفوظة") has one every few words; an article sentence quoting one has one in a line.
RUN_MIN_PHRASES = 3
RUN_CHARS_PER_PHRASE = 90  # ... and at least one per this many characters
_MENU_SEPARATORS = re.compile(r"\s*[|•·»›]\s*|\s+[-–/]\s+")
_LINK_LIKE = re.compile(r"^(?:https?://\S+|www\.\S+|#\S+|@\w+|\S+\.(?:com|net|org|me|ly|co)(?:/\S*)?)$", re.IGNORECASE)
_SENTENCE_PUNCT = re.compile(r"[.!?؟:…]\s*[\"'»”)]*$")
_FULL_STOP = re.compile(r"(?<![.…])[.!?؟]\s*[\"'»”)]*$")  # a full stop, not the dots of a cut-off teaser
MIN_WORDS = 3  # a line of fewer words (tokens with a letter) is kept only if it ends like a sentence ("استقال الوزير.")


def furniture_reason(line: str) -> str | None:
    """Why `line` (one paragraph) is page furniture rather than news, a key of SKIP_REASONS; None for news.

    Looks at the line alone; `recurring_lines` adds what only a whole input shows (lines shared by many
    documents)."""
    s = " ".join(line.split())
    if not s:
        return "too-short"
    words = s.split(" ")
    wordy = [w for w in words if any(c.isalpha() for c in w)]  # "." and "2018" are not words here
    if len(s) <= LABELLED_MAX_CHARS:
        for reason, pattern in _LABELLED:
            label = pattern.match(s)
            # "شاهد أيضاً : التحالف يرسل تعزيزات" is a link to another page; "اقرأ أيضا : قال الوزير إن ... ."
            # is the article's own sentence whose link the scraper lost
            if label and not (reason == "see-also" and _FULL_STOP.search(s[label.end() :])):
                return reason
    if len(s) <= FURNITURE_MAX_CHARS:
        for reason, pattern in _SHORT_RULES:
            if pattern.search(s):
                return reason
    phrases = len(_ALL_PHRASES.findall(s))
    if len(s) > FURNITURE_MAX_CHARS and phrases >= RUN_MIN_PHRASES and len(s) / phrases <= RUN_CHARS_PER_PHRASE:
        return "furniture-run"
    parts = [p for p in _MENU_SEPARATORS.split(s) if p]
    if len(parts) >= 4 and sum(len(p.split()) for p in parts) / len(parts) <= 3:
        return "menu"  # many separators between items of one to three words
    if sum(bool(_LINK_LIKE.match(w)) for w in words) >= max(1, len(words) / 2):
        return "links"  # mostly links, hashtags or handles
    letters = sum(c.isalpha() for c in s)
    if letters < 0.5 * len(s.replace(" ", "")):
        return "no-text"  # dates, times, view counts, rows of dots
    if len(wordy) <= 1 or (len(wordy) < MIN_WORDS and not _SENTENCE_PUNCT.search(s)):
        return "too-short"
    return None


def is_boilerplate(line: str) -> bool:
    """True for page furniture (furniture_reason gives why). Meant for one line (one paragraph)."""
    return furniture_reason(line) is not None


# --- furniture shared by the documents of one input ------------------------------------------------------

RECURRING_MIN_DOCUMENTS = 5  # a line must be in at least this many otherwise different documents ...
RECURRING_MIN_CHARS = 12  # ... and be more than a word or two ("وأضاف :" recurs everywhere, and is kept or
# dropped by the line rules)
NEAR_DUPLICATE = 0.5  # documents sharing this share of their text are one story (syndicated, scraped twice)
_PAIR_LINES_MAX = 50  # lines in more documents than this are not used to find near-duplicates (menus are)


def line_key(line: str) -> str:
    """What two lines must share to count as the same line: their words (whitespace collapsed)."""
    return " ".join(line.split())


def recurring_lines(texts: list[str], min_documents: int = RECURRING_MIN_DOCUMENTS) -> frozenset[str]:
    """The lines (as `line_key`s) that recur across at least `min_documents` of `texts` that are otherwise
    different: a site's menu, footer or "most read" box, repeated on each of its pages in one input.

    Documents are counted once per story: identical texts, and near-duplicates (sharing at least NEAR_DUPLICATE
    of the characters of the shorter one's distinct lines: the same wire story on two sites, a page scraped
    twice) count as one, so a story's own sentences do not become furniture because it was collected several
    times. Characters, not lines: a menu is many short lines and a story a few long ones. Fewer than
    `min_documents` documents (one /v1/analyze request) have no recurring lines."""
    documents = [
        frozenset(k for k in map(line_key, text.split("\n")) if len(k) >= RECURRING_MIN_CHARS)
        for text in dict.fromkeys(texts)
    ]
    if len(documents) < min_documents:
        return frozenset()
    holders: dict[str, list[int]] = {}
    for index, lines in enumerate(documents):
        for key in lines:
            holders.setdefault(key, []).append(index)
    shared: dict[tuple[int, int], int] = {}  # characters of the lines two documents share
    for key, indices in holders.items():
        if 1 < len(indices) <= _PAIR_LINES_MAX:
            for a in range(len(indices)):
                for b in range(a + 1, len(indices)):
                    pair = (indices[a], indices[b])
                    shared[pair] = shared.get(pair, 0) + len(key)
    sizes = [sum(map(len, lines)) for lines in documents]
    story = list(range(len(documents)))  # union-find: near-duplicate documents share a root

    def root(i: int) -> int:
        while story[i] != i:
            story[i] = story[story[i]]
            i = story[i]
        return i

    for (a, b), characters in shared.items():
        if characters >= NEAR_DUPLICATE * min(sizes[a], sizes[b]):
            story[root(a)] = root(b)
    return frozenset(
        key
        for key, indices in holders.items()
        if len(indices) >= min_documents and len({root(i) for i in indices}) >= min_documents
    )


def paragraph_line(text: str, paragraph: Paragraph) -> str:
    """The whole line of `text` that `paragraph` was cut from (a long line gives several paragraphs)."""
    start = text.rfind("\n", 0, paragraph.start) + 1
    end = text.find("\n", paragraph.end)
    return text[start : end if end >= 0 else len(text)]


def skip_reason(text: str, paragraph: Paragraph, recurring: frozenset[str] = frozenset()) -> str | None:
    """Why `paragraph` of document `text` is not classified (a key of SKIP_REASONS), or None to classify it."""
    reason = furniture_reason(paragraph.text)
    if reason is None and recurring and line_key(paragraph_line(text, paragraph)) in recurring:
        return "recurring"
    return reason


# --- analysis --------------------------------------------------------------------------------------------


def neutral_label(labels) -> str | None:
    """The task's neutral label (unrelated / other / none), if it has one."""
    for label in labels:
        if label.lower() in NEUTRAL_LABELS:
            return label
    return None


def verdict_rule(task_spec) -> str:
    if task_spec.input == "pair" and neutral_label(task_spec.labels):
        return RULE_NEUTRAL
    return RULE_MEAN


def analyze_document(
    predictor,
    text: str,
    target: str | None = None,
    tasks=None,
    abstain_below: float | None = None,
    abstain_unseen_targets: bool = False,
) -> dict:
    """Classify a whole document paragraph by paragraph and give a verdict per task (rules above).

    Returns {"predictions": {task: {label, score, scores, rule}}, "paragraphs": [{text, start, end,
    predictions}], "skipped": [{text, start, end, reason}], "truncated", "skipped_tasks", "empty"}.
    All paragraphs go to `predictor.predict_items` in one call, so they are batched together.
    """
    return analyze_documents(
        predictor, [text], [target], tasks, abstain_below, abstain_unseen_targets=abstain_unseen_targets
    )[0]


def sift_paragraphs(text: str, target: str | None, max_length: int, recurring: frozenset[str]):
    """A document's paragraphs in reading order, split in two: those the model reads, and the furniture
    with its reason ([(paragraph, reason)]). Serving and the fitting of the article verdict both cut here."""
    read, dropped = [], []
    for paragraph in split_paragraphs(text, char_budget(max_length, target)):
        reason = skip_reason(text, paragraph, recurring)
        if reason is None:
            read.append(paragraph)
        else:
            dropped.append((paragraph, reason))
    return read, dropped


def analyze_documents(
    predictor,
    texts: list[str],
    targets: list[str | None] | None = None,
    tasks=None,
    abstain_below: float | None = None,
    progress=None,
    abstain_unseen_targets: bool = False,
    recurring: frozenset[str] | None = None,
) -> list[dict]:
    """`analyze_document` for many documents, with all their paragraphs in one `predict_items` call (so
    batches are filled across documents). `progress(n)` is called as paragraphs are done.

    `recurring`: the lines that are furniture because they recur across the input (`recurring_lines`). None
    computes them from `texts`; a caller that passes one input in several calls computes them once over the
    whole input and passes them to each call, so every document is judged against the same set."""
    from serving.predictor import Item  # the predictor module imports torch; only reached with a predictor

    manifest = predictor.manifest
    names = predictor.check_tasks(tasks)
    targets = list(targets) if targets is not None else [None] * len(texts)
    recurring = recurring_lines(texts) if recurring is None else recurring
    results, kept = [], []  # kept: (document index, paragraph)
    for index, (text, target) in enumerate(zip(texts, targets)):
        read, dropped = sift_paragraphs(text, target, manifest.max_length, recurring)
        kept.extend((index, paragraph) for paragraph in read)
        results.append(
            {
                "predictions": {},
                "paragraphs": [],
                "skipped": [{"text": p.text, "start": p.start, "end": p.end, "reason": why} for p, why in dropped],
                "truncated": False,
                "skipped_tasks": [],
                "empty": True,
            }
        )
    answers = (
        predictor.predict_items(
            [Item(p.text, targets[i]) for i, p in kept], tasks, **({"progress": progress} if progress else {})
        )
        if kept
        else []
    )
    by_document = [[] for _ in texts]
    for (index, paragraph), answer in zip(kept, answers):
        by_document[index].append((paragraph, answer))
    learned = getattr(predictor, "document_models", {})
    for result, pairs, target in zip(results, by_document, targets):
        if pairs:
            _fill(result, pairs, names, manifest, abstain_below, abstain_unseen_targets, learned, target)
    return results


def _fill(
    result: dict,
    pairs: list,
    names: list[str],
    manifest,
    abstain_below: float | None,
    abstain_unseen_targets: bool = False,
    learned: dict | None = None,
    target: str | None = None,
) -> None:
    answers = [answer for _, answer in pairs]
    result["empty"] = False
    result["truncated"] = any(a.truncated for a in answers)
    result["skipped_tasks"] = list(answers[0].skipped_tasks)
    for paragraph, answer in pairs:
        result["paragraphs"].append(
            {
                "text": paragraph.text,
                "start": paragraph.start,
                "end": paragraph.end,
                "predictions": {
                    t: abstain(p, abstain_below, abstain_unseen_targets) for t, p in answer.predictions.items()
                },
            }
        )
    for name in names:
        if name not in answers[0].predictions:
            continue  # a pair task without a target: listed in skipped_tasks
        spec = manifest.task(name)
        per_paragraph = [a.predictions[name] for a in answers]
        weights = [len(paragraph.text) for paragraph, _ in pairs]
        if learned and name in learned and target:  # a verdict model fitted on labelled articles
            settings = manifest.normalization
            verdict = learned[name].verdict(
                list(spec.labels),
                [normalize(p.text, settings) for p, _ in pairs],
                normalize(target, settings),
                per_paragraph,
            )
        else:
            verdict = document_verdict(list(spec.labels), per_paragraph, weights, verdict_rule(spec))
        if "target_seen" in per_paragraph[0]:  # one target per document: its paragraphs agree
            verdict["target_seen"] = per_paragraph[0]["target_seen"]
        result["predictions"][name] = abstain(verdict, abstain_below, abstain_unseen_targets)


def document_verdict(labels: list[str], paragraphs: list[dict], weights: list[float], rule: str) -> dict:
    """Combine paragraph answers ({label, score, scores}, un-abstained) into one by `rule`."""
    if rule == RULE_NEUTRAL:
        neutral = neutral_label(labels)
        candidates = [p for p in paragraphs if p["label"] != neutral]
        if candidates:
            best = max(candidates, key=lambda p: p["score"])
            return {"label": best["label"], "score": best["score"], "scores": dict(best["scores"]), "rule": rule}
        mean = {l: sum(p["scores"][l] for p in paragraphs) / len(paragraphs) for l in labels}
        return {"label": neutral, "score": mean[neutral], "scores": mean, "rule": rule}
    if rule != RULE_MEAN:
        raise ValueError(f"unknown verdict rule {rule!r}; known: {sorted(VERDICT_RULES)}")
    total = float(sum(weights)) or 1.0
    mean = {l: sum(w * p["scores"][l] for p, w in zip(paragraphs, weights)) / total for l in labels}
    label = max(labels, key=lambda l: mean[l])
    return {"label": label, "score": mean[label], "scores": mean, "rule": rule}

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
With `abstain_below`, a verdict (or paragraph) whose score is below it is labelled "uncertain"; with
`abstain_unseen_targets`, so is one whose target the bundle never saw in training (`target_seen`: false).
A document with no usable paragraph (empty, or all boilerplate) gets `"predictions": {}` and
`"empty": true`; nothing is guessed.

Pure Python: no torch import; the predictor passed in does the model work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from serving.abstention import UNCERTAIN, abstain  # noqa: F401  (torch-free, like this module)

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


# --- boilerplate -----------------------------------------------------------------------------------------

_NETWORKS = (r"(?:فيسبوك|فيس ?بوك|الفيسبوك|تويتر|تويتّر|إكس|واتساب|واتس ?اب|الواتساب|تلغرام|تيليجرام|تليجرام|"
             r"انستغرام|إنستغرام|انستجرام|إنستجرام|يوتيوب|اليوتيوب|لينكد ?إن|تيك ?توك|سناب ?شات|جوجل|"
             r"البريد الإلكتروني|البريد الالكتروني|facebook|twitter|whatsapp|telegram|instagram|youtube|"
             r"linkedin|tiktok|snapchat|e-?mail|x)")
# Phrases that mark a line as page furniture when the line is short (a long line may quote them).
_FURNITURE = re.compile("|".join([
    r"تابعونا|تابعنا|تابع(?:وا)?\s+\S+(?:\s+\S+)?\s+(?:على|عبر)\s+" + _NETWORKS,
    r"^(?:شارك|شاركها|شاركوا|مشاركة|انشر|أرسل|ارسل|غرّد|غرد)(?:\s+(?:الخبر|المقال|الموضوع|هذا|هذه|القصة))*"
    r"(?:\s*(?:على|عبر|في|مع)?\s*" + _NETWORKS + r")*\s*[:.!]?$",
    r"(?:شارك|انشر|مشاركة)\s+(?:على|عبر)\s+" + _NETWORKS,
    r"(?:جميع|كل|كافة)\s+الحقوق\s+محفوظة|all rights reserved|copyright|©",
    r"ملفات\s+(?:تعريف\s+)?الارتباط|الكوكيز|كوكيز|\bcookies?\b",
    r"سياسة\s+الخصوصية|شروط\s+(?:الاستخدام|الخدمة)|privacy policy|terms of (?:use|service)",
    r"^(?:اقرأ|إقرأ|اقرا)\s+(?:أيضا|أيضاً|ايضا|المزيد)|^(?:read more|see also|related)\b|^(?:أخبار|مواضيع|مقالات)\s+ذات\s+صلة",
    r"اشترك\s+(?:في|ب)\s*(?:النشرة|القائمة|قناتنا)|newsletter|\bsubscribe\b|sign up|log ?in\b|تسجيل\s+(?:الدخول|الخروج)",
    r"\b(?:share|tweet|follow us|like us)\b|(?:share|follow) (?:on|us)",
    r"بريدك\s+(?:الإلكتروني|الالكتروني)|كلمة\s+السر|نشرتنا|your browser|javascript|\{\s*[*|#]",
    r"\d[\d,.]*\s*(?:مشاهدة|مشاهدات|قراءة|views|comments)\b|^(?:منذ\s+\d+\s+\S+\s*)+$",
    r"^(?:طباعة|print|أضف تعليق|اضف تعليق|التعليقات|تعليقات|comments?|إعلان|advertisement|الرئيسية|home)\s*[:.]?$",
]), re.IGNORECASE)
FURNITURE_MAX_CHARS = 160  # longer lines that merely mention "follow us" are kept: they may carry news
_MENU_SEPARATORS = re.compile(r"\s*[|•·»›]\s*|\s+[-–/]\s+")
_LINK_LIKE = re.compile(r"^(?:https?://\S+|www\.\S+|#\S+|@\w+|\S+\.(?:com|net|org|me|ly|co)(?:/\S*)?)$", re.IGNORECASE)
_SENTENCE_PUNCT = re.compile(r"[.!?؟:…]\s*[\"'»”)]*$")
MIN_WORDS = 3  # a line of fewer words (tokens with a letter) is kept only if it ends like a sentence ("استقال الوزير.")


def is_boilerplate(line: str) -> bool:
    """True for page furniture: share/follow buttons, copyright and cookie lines, menus, link lists, and
    lines too short or too symbol-heavy to be a news sentence. Meant for one line (one paragraph)."""
    s = " ".join(line.split())
    if not s:
        return True
    words = s.split(" ")
    wordy = [w for w in words if any(c.isalpha() for c in w)]  # "." and "2018" are not words here
    if len(s) <= FURNITURE_MAX_CHARS and _FURNITURE.search(s):
        return True
    parts = [p for p in _MENU_SEPARATORS.split(s) if p]
    if len(parts) >= 4 and sum(len(p.split()) for p in parts) / len(parts) <= 3:
        return True  # a menu: many separators between items of one to three words
    if sum(bool(_LINK_LIKE.match(w)) for w in words) >= max(1, len(words) / 2):
        return True  # mostly links, hashtags or handles
    letters = sum(c.isalpha() for c in s)
    if letters < 0.5 * len(s.replace(" ", "")):
        return True  # dates, times, view counts, rows of dots
    if len(wordy) <= 1 or (len(wordy) < MIN_WORDS and not _SENTENCE_PUNCT.search(s)):
        return True
    return False


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


def analyze_document(predictor, text: str, target: str | None = None, tasks=None,
                     abstain_below: float | None = None, abstain_unseen_targets: bool = False) -> dict:
    """Classify a whole document paragraph by paragraph and give a verdict per task (rules above).

    Returns {"predictions": {task: {label, score, scores, rule}}, "paragraphs": [{text, start, end,
    predictions}], "skipped": [{text, start, end, reason}], "truncated", "skipped_tasks", "empty"}.
    All paragraphs go to `predictor.predict_items` in one call, so they are batched together.
    """
    return analyze_documents(predictor, [text], [target], tasks, abstain_below,
                             abstain_unseen_targets=abstain_unseen_targets)[0]


def analyze_documents(predictor, texts: list[str], targets: list[str | None] | None = None, tasks=None,
                      abstain_below: float | None = None, progress=None,
                      abstain_unseen_targets: bool = False) -> list[dict]:
    """`analyze_document` for many documents, with all their paragraphs in one `predict_items` call (so
    batches are filled across documents). `progress(n)` is called as paragraphs are done."""
    from serving.predictor import Item  # the predictor module imports torch; only reached with a predictor

    manifest = predictor.manifest
    names = predictor.check_tasks(tasks)
    targets = list(targets) if targets is not None else [None] * len(texts)
    results, kept = [], []  # kept: (document index, paragraph)
    for index, (text, target) in enumerate(zip(texts, targets)):
        skipped = []
        for paragraph in split_paragraphs(text, char_budget(manifest.max_length, target)):
            if is_boilerplate(paragraph.text):
                skipped.append({"text": paragraph.text, "start": paragraph.start, "end": paragraph.end,
                                "reason": "boilerplate"})
            else:
                kept.append((index, paragraph))
        results.append({"predictions": {}, "paragraphs": [], "skipped": skipped, "truncated": False,
                        "skipped_tasks": [], "empty": True})
    answers = predictor.predict_items([Item(p.text, targets[i]) for i, p in kept], tasks,
                                      **({"progress": progress} if progress else {})) if kept else []
    by_document = [[] for _ in texts]
    for (index, paragraph), answer in zip(kept, answers):
        by_document[index].append((paragraph, answer))
    for result, pairs in zip(results, by_document):
        if pairs:
            _fill(result, pairs, names, manifest, abstain_below, abstain_unseen_targets)
    return results


def _fill(result: dict, pairs: list, names: list[str], manifest, abstain_below: float | None,
          abstain_unseen_targets: bool = False) -> None:
    answers = [answer for _, answer in pairs]
    result["empty"] = False
    result["truncated"] = any(a.truncated for a in answers)
    result["skipped_tasks"] = list(answers[0].skipped_tasks)
    for paragraph, answer in pairs:
        result["paragraphs"].append({
            "text": paragraph.text, "start": paragraph.start, "end": paragraph.end,
            "predictions": {t: abstain(p, abstain_below, abstain_unseen_targets)
                            for t, p in answer.predictions.items()}})
    for name in names:
        if name not in answers[0].predictions:
            continue  # a pair task without a target: listed in skipped_tasks
        spec = manifest.task(name)
        per_paragraph = [a.predictions[name] for a in answers]
        weights = [len(paragraph.text) for paragraph, _ in pairs]
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


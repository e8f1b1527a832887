"""Arabic text normalisation: one function, whose settings travel inside the bundle."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, fields

# Harakat, tanween, shadda, sukun, superscript alef and Quranic marks: they rarely change meaning in news
# text and most writers omit them, so a model should not see two spellings of one word.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = "\u0640"
_ALEF_VARIANTS = re.compile("[\u0622\u0623\u0625\u0671]")  # آ أ إ ٱ -> ا
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class NormalizationSettings:
    """What `normalize` does. Saved in the bundle manifest so serving applies exactly what training applied.

    The letter-variant merges are off by default: the offline base (multilingual-e5) learnt its vocabulary
    from unnormalised text, so merging alef/yaa/taa forms would move words away from the pieces it knows.
    Turn them on for bases pretrained on normalised text (e.g. AraBERT v1).
    """

    strip_diacritics: bool = True
    strip_tatweel: bool = True
    unify_alef: bool = False  # أ إ آ ٱ -> ا
    unify_yaa: bool = False  # ى -> ي
    unify_taa_marbuta: bool = False  # ة -> ه
    url_token: str | None = "URL"  # replace links with this word; None keeps them
    mention_token: str | None = "@USER"  # replace @handles; None keeps them
    collapse_whitespace: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NormalizationSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown normalisation settings {unknown}; this rasid knows {sorted(known)}")
        return cls(**data)


DEFAULT_SETTINGS = NormalizationSettings()


def normalize(text: str, settings: NormalizationSettings = DEFAULT_SETTINGS) -> str:
    """Return `text` normalised according to `settings` (pure function of both)."""
    if settings.url_token is not None:
        text = _URL.sub(settings.url_token, text)
    if settings.mention_token is not None:
        text = _MENTION.sub(settings.mention_token, text)
    if settings.strip_diacritics:
        text = _DIACRITICS.sub("", text)
    if settings.strip_tatweel:
        text = text.replace(_TATWEEL, "")
    if settings.unify_alef:
        text = _ALEF_VARIANTS.sub("\u0627", text)
    if settings.unify_yaa:
        text = text.replace("\u0649", "\u064a")
    if settings.unify_taa_marbuta:
        text = text.replace("\u0629", "\u0647")
    if settings.collapse_whitespace:
        text = _SPACES.sub(" ", text).strip()
    return text


# Characters that leave nothing for a model to read, whatever the settings: marks that sit on a letter (harakat,
# Quranic marks: Unicode Mn/Me), tatweel, and characters that are not text at all (NUL and other controls: Cc;
# zero-width and bidi controls, byte-order marks: Cf), besides spaces. Normalisation strips diacritics and
# tatweel; the rest the tokenizer drops or maps to nothing, so such a text would get a confident-looking label
# computed from an empty input.
_NOTHING_CATEGORIES = {"Mn", "Me", "Cc", "Cf", "Zs", "Zl", "Zp"}
NOTHING_TO_READ = (
    "holds nothing to classify once normalised: only diacritics, tatweel, control, zero-width or bidi characters"
)


def nothing_to_read(text: str) -> bool:
    """True when `text` is made only of what normalisation and tokenisation remove (see _NOTHING_CATEGORIES):
    such a text is bad input, refused with NOTHING_TO_READ, not classified."""
    return all(c.isspace() or c == _TATWEEL or unicodedata.category(c) in _NOTHING_CATEGORIES for c in text)

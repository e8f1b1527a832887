"""Abstention: when an answer says "uncertain" instead of a label. One helper for every caller (predictor,
documents, HTTP routes, `rasid predict`, `rasid evaluate`). Pure Python, so serving.documents needs no torch."""

from __future__ import annotations

UNCERTAIN = "uncertain"


def abstain(answer: dict, below: float | None = None, unseen_targets: bool = False) -> dict:
    """A copy of `answer` ({"label", "score", "scores", ...}) labelled UNCERTAIN when its score is below `below`,
    or, with `unseen_targets`, when it says its target was not seen in training (`"target_seen": false`).
    The scores are kept either way: a caller can still read what the model would have said."""
    answer = dict(answer)
    if (below is not None and answer["score"] < below) or (unseen_targets and answer.get("target_seen") is False):
        answer["label"] = UNCERTAIN
    return answer


def check_threshold(value: float | None, option: str = "--abstain-below") -> float | None:
    """A probability threshold must be in (0, 1]: 0 would never abstain, above 1 would always."""
    from serving.errors import RasidError

    if value is not None and not 0 < value <= 1:
        raise RasidError(f"{option} must be in (0, 1], got {value}.")
    return value

"""Service settings: every limit in one place, read from RASID_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.precision import PRECISIONS


class Settings(BaseSettings):
    """Defaults suit one CPU host behind a reverse proxy; each line says why."""

    model_config = SettingsConfigDict(env_prefix="RASID_", frozen=True)

    model_dir: Path | None = None  # the bundle folder; `rasid serve --model` sets it, never a request
    api_key: SecretStr | None = None  # set: every /v1 route needs `Authorization: Bearer <key>`
    # Longer texts are cut here before tokenising (they are truncated to the model window anyway, and
    # counting tokens of a megabyte would cost more than the answer); the response says "truncated".
    max_text_chars: int = Field(10_000, ge=1)
    max_target_chars: int = Field(1_000, ge=1)  # a target is a topic or a claim: a line, not an article
    max_article_chars: int = Field(100_000, ge=1)  # /v1/analyze; longer is a 422
    # /v1/analyze: paragraphs (lines, and pieces of long lines) per article; more is a 422. Several times the
    # longest real news page, and seconds of model time: a longer "page" is a dump to send in parts.
    max_article_paragraphs: int = Field(400, ge=1)
    max_batch_items: int = Field(64, ge=1)  # inputs in one /v1/classify/batch request; more is a 422
    max_body_bytes: int = Field(2_000_000, ge=1024)  # request body; larger is a 413 (JSON escapes use 6 bytes a char)
    max_queue_items: int = Field(512, ge=1)  # texts waiting for the model; past it 429 + Retry-After
    retry_after_s: int = Field(1, ge=1)  # what a 429 (and a 503 while loading) tells clients to wait
    request_timeout_s: float = Field(30.0, gt=0)  # a request still waiting after this gets a 504
    # A request whose expected wait (texts queued and in the model over measured texts/s) is above this share
    # of request_timeout_s is refused at once (429 + Retry-After) rather than accepted and timed out: the
    # throughput estimate moves with the texts and the host, and the rest of the timeout is the margin.
    admission_wait_fraction: float = Field(0.8, gt=0, le=1)
    max_batch_size: int = Field(32, ge=1)  # texts per model call: the batcher's batch (no compute on padding)
    max_wait_ms: float = Field(
        2.0, ge=0
    )  # how long a lone text waits for company; under load batches fill while the model runs
    # The encoder's arithmetic (serving/precision.py): auto is the bundle's fast path, fp32 exactly the trained model.
    precision: Literal[PRECISIONS] = "auto"
    fast: bool = True  # RASID_FAST=false: an alias of RASID_PRECISION=fp32 (a precision given explicitly wins)
    # Closed pair tasks (target stance) answer "uncertain" for a target not seen in training, scores kept: a
    # monitor that acts on labels should not act on a stance toward a target the model never learnt.
    abstain_unseen_targets: bool = False

    @model_validator(mode="after")
    def _consistent(self):
        if not self.fast and self.precision == "auto":
            object.__setattr__(self, "precision", "fp32")  # the alias, folded in once (the model is frozen)
        if self.max_queue_items < self.max_batch_items:
            raise ValueError(
                f"max_queue_items ({self.max_queue_items}) must be at least max_batch_items "
                f"({self.max_batch_items}), or a full batch request could never be queued"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests pass their own Settings to create_app instead."""
    return Settings()

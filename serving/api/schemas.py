"""Request and response bodies. Request models carry the limits, so bad input is a 422 before any code runs."""

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from serving.api.settings import Settings
from serving.normalize import NOTHING_TO_READ, nothing_to_read


def _usable_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty or whitespace only")
    if nothing_to_read(value):  # "\u064e\u0640\u200b": not blank, yet the model would read an empty text
        raise PydanticCustomError("nothing_to_read", NOTHING_TO_READ)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800": not text, and tokenizers choke on it
        raise PydanticCustomError("unicode", "must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _distinct(tasks: list[str]) -> list[str]:
    if len(set(tasks)) != len(tasks):
        raise PydanticCustomError("duplicate", "must not name a task twice")
    return tasks


TaskName = Annotated[str, Field(min_length=1, max_length=100)]
# Task names are checked against the loaded model in the route (the model is not known at import).
Tasks = Annotated[list[TaskName], Field(min_length=1, max_length=32), AfterValidator(_distinct)] | None
_NOT_BLANK = {"pattern": r"\S"}
# A probability threshold: below it an answer's label is "uncertain" (its scores are kept). Pick one from the
# risk-coverage table of `rasid evaluate` (docs/honest-answers.md).
AbstainBelow = Annotated[
    float | None,
    Field(
        gt=0,
        le=1,
        description=(
            'Answer "uncertain" (scores kept) when the top score is below this probability; see the risk-coverage '
            "table of `rasid evaluate` to choose it."
        ),
    ),
]
_STRICT = ConfigDict(extra="forbid")  # a misspelt field ("taget") is an error, not a silently ignored key


@dataclass(frozen=True)
class RequestModels:
    classify: type[BaseModel]
    batch: type[BaseModel]
    analyze: type[BaseModel]


def request_models(settings: Settings) -> RequestModels:
    """The request bodies with this service's configured limits (so /docs shows the real ones)."""
    # Texts past max_text_chars are cut, not refused. The pattern only documents "not blank": the
    # validator enforces it, with a clearer message than a regex mismatch.
    Text = Annotated[str, Field(min_length=1, json_schema_extra=_NOT_BLANK), AfterValidator(_usable_text)]
    Target = (
        Annotated[
            str,
            Field(min_length=1, max_length=settings.max_target_chars, json_schema_extra=_NOT_BLANK),
            AfterValidator(_usable_text),
        ]
        | None
    )

    class ClassifyRequest(BaseModel):
        model_config = _STRICT
        text: Text = Field(
            description=f"Texts past {settings.max_text_chars} characters are cut; "
            "the model window truncates sooner, and the response says so."
        )
        target: Target = Field(None, description="The topic or claim that pair tasks (stance) judge the text against.")
        tasks: Tasks = Field(None, description="Tasks to run; default: every task the input can take.")
        abstain_below: AbstainBelow = None

    class BatchInput(BaseModel):
        model_config = _STRICT
        text: Text
        target: Target = None

    class BatchRequest(BaseModel):
        model_config = _STRICT
        inputs: list[BatchInput] = Field(min_length=1, max_length=settings.max_batch_items)
        tasks: Tasks = None
        abstain_below: AbstainBelow = None

    class AnalyzeRequest(BaseModel):
        model_config = _STRICT
        text: Annotated[
            str,
            Field(min_length=1, max_length=settings.max_article_chars, json_schema_extra=_NOT_BLANK),
            AfterValidator(_usable_text),
        ] = Field(description="A whole article; paragraphs are split on line breaks and boilerplate lines skipped.")
        target: Target = None
        tasks: Tasks = None
        abstain_below: AbstainBelow = None

    return RequestModels(ClassifyRequest, BatchRequest, AnalyzeRequest)


class Prediction(BaseModel):
    label: str
    score: float = Field(description="Calibrated probability of the label.")
    scores: dict[str, float] = Field(description="Every label with its probability.")
    target_seen: bool | None = Field(
        None,
        description=(
            "Pair tasks whose bundle lists its training targets (target stance): whether this target was one of "
            "them (after normalisation, ignoring case). null: not known, or an open task such as claims, where "
            "every claim is new."
        ),
    )


class ModelSummary(BaseModel):
    base_model: str
    tasks: list[str]
    rasid_version: str
    created: str


class ClassifyResult(BaseModel):
    predictions: dict[str, Prediction]
    truncated: bool = Field(description="The text (or target and text) was longer than the model window.")
    skipped_tasks: list[str] = Field(description="Pair tasks not run because no target was given.")


class ClassifyResponse(ClassifyResult):
    model: ModelSummary


class BatchResponse(BaseModel):
    results: list[ClassifyResult] = Field(description="One per input, in input order.")
    model: ModelSummary


class DocumentPrediction(Prediction):
    rule: str = Field(description="How paragraph answers were combined into the document verdict.")


class Paragraph(BaseModel):
    text: str
    start: int = Field(description="Offset of the paragraph in the request text (characters).")
    end: int
    predictions: dict[str, Prediction]


class SkippedParagraph(BaseModel):
    text: str
    start: int
    end: int
    reason: str = Field(
        description='Why it was not classified: page furniture of one kind ("see-also", "tags", '
        '"copyright", "share", "menu", ...; serving.documents.SKIP_REASONS, '
        "docs/furniture.md)."
    )


class AnalyzeResponse(BaseModel):
    predictions: dict[str, DocumentPrediction] = Field(description="The document verdict per task.")
    paragraphs: list[Paragraph]
    skipped: list[SkippedParagraph] = Field(
        description="Page furniture (menus, links, copyright, ...), not classified."
    )
    truncated: bool
    skipped_tasks: list[str]
    empty: bool = Field(description="No usable paragraph: nothing is predicted.")
    model: ModelSummary


class TaskInfo(BaseModel):
    name: str
    labels: list[str]
    input: str = Field(description='"single" (text) or "pair" (target and text).')
    open_targets: bool | None = Field(
        None, description="Pair tasks: true when any target is normal (claims); null when the bundle does not say."
    )
    targets: dict[str, int] | None = Field(
        None, description="Closed pair tasks: the targets seen in training, with their numbers of training rows."
    )


class ModelInfo(BaseModel):
    tasks: list[TaskInfo]
    base_model: str
    max_length: int = Field(description="Model window in tokens.")
    pooling: str
    metrics: dict[str, Any] = Field(description="Validation metrics per task, from training.")
    rasid_version: str
    created: str
    backend: str = Field(description='What runs the encoder, e.g. "torch-fp32" or "torch-int8".')
    limits: dict[str, float] = Field(description="This service's request limits.")
    threads: dict[str, Any] = Field(
        description="torch's thread count and why it was chosen (CPU affinity, cgroup "
        "quota, RASID_THREADS or --threads)."
    )


class Status(BaseModel):
    status: str
    detail: str | None = None


class FieldError(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[FieldError] = []

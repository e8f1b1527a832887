"""Error responses: short sentences naming the field for 4xx, and a logged, detail-free 500 for real bugs."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("rasid.serve")

# Pydantic's wording for the common cases, rewritten as what the client must do.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text (no lone surrogates)",
    "list_type": "must be a list",
    "bool_type": "must be true or false",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
}
_PARSE_FAILURE = "There was an error parsing the body"  # FastAPI's 400 when json.loads fails oddly


def _sentence(error: dict) -> tuple[str, str]:
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        where = f" (at character {loc[1]})" if len(loc) > 1 else ""
        return "body", f"is not valid JSON{where}"
    field = ".".join(loc) or "body"
    limit = (error.get("ctx") or {}).get("max_length")
    if error.get("type") == "string_too_long" and isinstance(limit, int):
        return field, f"is longer than this server's limit of {limit:,} characters"
    message = _MESSAGES.get(error.get("type"), str(error.get("msg", "is invalid")))
    message = message.removeprefix("Value error, ")
    return field, message[:1].lower() + message[1:]


def validation_response(errors: list[dict]) -> JSONResponse:
    sentences = [_sentence(e) for e in errors]
    detail = "; ".join(f"{field}: {message}" for field, message in sentences[:3])
    if len(sentences) > 3:
        detail += f"; and {len(sentences) - 3} more"
    return JSONResponse(
        {"detail": detail, "errors": [{"field": f, "message": m} for f, m in sentences]}, status_code=422
    )


async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return validation_response(list(error.errors()))


async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 400 and str(error.detail).startswith(_PARSE_FAILURE):
        cause = error.__cause__
        message = "is not valid UTF-8" if isinstance(cause, UnicodeError) else "is not valid JSON"
        return validation_response([{"loc": ("body",), "msg": message, "type": "body_parse"}])
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)


async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    # Only a bug in rasid gets here: log it with the traceback, tell the client nothing internal.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error: it has been logged."}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)

"""ASGI middleware that must act before the body is parsed: the API key check and the body size limit."""

from __future__ import annotations

import hmac
import json


async def _reply(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class ApiKeyMiddleware:
    """With a key set, /v1 routes need `Authorization: Bearer <key>`. Checked before the body is read,
    so an unauthenticated client gets 401 whatever it sends and cannot make the server buffer a body."""

    def __init__(self, app, api_key: str | None, prefix: str = "/v1"):
        self.app, self.prefix = app, prefix
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if (
            self.expected is not None
            and scope["type"] == "http"
            and (scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/"))
        ):
            given = (_header(scope, b"authorization") or "").encode("latin-1")
            if not hmac.compare_digest(given, self.expected):  # constant time: no timing oracle on the key
                return await _reply(
                    send,
                    401,
                    "this route needs the header 'Authorization: Bearer <API key>'.",
                    {"WWW-Authenticate": "Bearer"},
                )
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413: at once from Content-Length, else while reading
    (chunked uploads), so no more than `max_bytes` is ever held in memory."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = f"the request body is larger than {self.max_bytes} bytes (RASID_MAX_BODY_BYTES)."
        length = _header(scope, b"content-length") or ""  # the server has already rejected malformed ones
        if length.isdigit() and int(length) > self.max_bytes:
            return await _reply(send, 413, too_large)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending the whole body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _reply(send, 413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later reads wait for the disconnect, as the server's own receive does

        await self.app(scope, replay, send)

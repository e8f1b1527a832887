"""The analysts' page at `/` and the API docs at `/docs` and `/redoc`, all served from inside the package so
that they work with no internet. The page is public; the /v1 calls it makes need the API key, when one is set.

Swagger UI and Redoc come from the `fastapi-offline` wheel (MIT; Swagger UI is Apache-2.0, Redoc MIT),
which ships their standalone bundles; FastAPI's own pages would fetch them, a favicon and Google Fonts from CDNs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PAGE_PREFIX = "/static"
DOCS_PREFIX = "/static/docs"


def docs_assets() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Adds `/`, the page's assets, and offline `/docs` and `/redoc` (the app must be built with
    docs_url=None and redoc_url=None, or FastAPI's CDN versions would be registered first)."""
    # The more specific mount first: Starlette takes the first mount whose prefix matches.
    app.mount(DOCS_PREFIX, StaticFiles(directory=docs_assets()), name="docs-assets")
    app.mount(PAGE_PREFIX, StaticFiles(directory=STATIC), name="page-assets")
    redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + redirect_url if redirect_url else None,
            swagger_js_url=f"{root}{DOCS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_PREFIX}/favicon.png",
            # Swagger UI's default validator badge is an image from an external service.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    if redirect_url:

        @app.get(redirect_url, include_in_schema=False)
        async def swagger_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

"""The analysts' page and the API docs over HTTP: served from the package, with no URL that leaves the server
(the page must work offline), and outside the API-key check. The browser test is tests/test_page_browser.py."""

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from serving.api.main import create_app
from serving.api.page import STATIC
from serving.api.settings import Settings

CONTENT_TYPES = {".html": ("text/html",), ".css": ("text/css",), ".js": ("text/javascript", "application/javascript")}
# An absolute or protocol-relative URL: anything the browser would fetch from another host.
EXTERNAL = re.compile(
    r"https?:|(?:src|href|action)\s*=\s*[\"']?//|url\(\s*[\"']?//|from\s+[\"']//|import\(\s*[\"']//", re.IGNORECASE
)


class References(HTMLParser):
    """The URLs an HTML page loads or links to (script src, link href, a href, img src, form action)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action", "spec-url") and value:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def client():
    # No model: the page and the docs must not depend on it.
    with TestClient(create_app(Settings(model_dir=None))) as client:
        yield client


def test_the_page_is_served_at_the_root_right_to_left_and_arabic(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="ar" dir="rtl">' in response.text
    assert "static/app.js" in response.text and "static/style.css" in response.text


def test_the_page_loads_only_its_own_assets_and_each_is_served(client):
    urls = references(client.get("/").text)
    assets = [u for u in urls if not u.startswith("data:")]
    assert "static/app.js" in assets and "static/style.css" in assets
    for url in assets:
        assert not EXTERNAL.search(url), url
        response = client.get("/" + url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("path", sorted(p.name for p in STATIC.iterdir()))
def test_every_asset_has_its_content_type_and_no_external_url(client, path):
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    suffix = "." + path.rsplit(".", 1)[-1]
    assert response.headers["content-type"].startswith(CONTENT_TYPES[suffix]), response.headers["content-type"]
    assert not EXTERNAL.search(response.text), EXTERNAL.search(response.text).group()


def test_the_external_url_check_catches_what_it_should():
    for text in (
        '<script src="https://cdn.example/x.js">',
        "<link href='//cdn.example/x.css'>",
        "@import url(//fonts.example/a.css);",
        'fetch("http://example.org")',
    ):
        assert EXTERNAL.search(text), text
    assert not EXTERNAL.search('<script type="module" src="static/app.js"></script> fetch("v1/analyze")')


@pytest.mark.parametrize(
    "page, expected",
    [
        (
            "/docs",
            {"swagger-ui-bundle.js": ("text/javascript", "application/javascript"), "swagger-ui.css": ("text/css",)},
        ),
        ("/redoc", {"redoc.standalone.js": ("text/javascript", "application/javascript")}),
    ],
)
def test_docs_pages_load_their_assets_from_rasid(client, page, expected):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(response.text), EXTERNAL.search(response.text).group()
    urls = references(response.text)
    for name in expected:
        assert any(u.endswith("/" + name) for u in urls), (name, urls)
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        name = url.rsplit("/", 1)[-1]
        if name in expected:
            assert asset.headers["content-type"].startswith(expected[name])
    assert client.get("/openapi.json").status_code == 200


def test_swagger_does_not_ask_an_external_validator(client):
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_page_and_docs_are_public_when_the_api_needs_a_key():
    with TestClient(create_app(Settings(model_dir=None, api_key="s3cret"))) as client:
        for path in (
            "/",
            "/static/app.js",
            "/static/style.css",
            "/docs",
            "/redoc",
            "/openapi.json",
            "/static/docs/swagger-ui-bundle.js",
        ):
            assert client.get(path).status_code == 200, path
        assert client.get("/v1/model").status_code == 401


def test_unknown_assets_are_404_and_do_not_escape_the_folder(client):
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/../main.py").status_code == 404
    assert client.get("/static/%2e%2e/main.py").status_code == 404


def caption_keys(script: str, table: str) -> set[str]:
    """The keys of one `const TABLE = { key: "caption", ... };` object literal in app.js."""
    body = re.search(r"const " + table + r" = \{(.*?)\n\};", script, re.S).group(1)
    return {quoted or bare for quoted, bare in re.findall(r'^\s*(?:"([^"]+)"|([\w-]+)):', body, re.M)}


def test_every_verdict_rule_and_skip_reason_has_an_arabic_caption_on_the_page():
    from serving.documents import SKIP_REASONS, VERDICT_RULES
    from serving.verdict import RULE_LEARNED

    script = (STATIC / "app.js").read_text(encoding="utf-8")
    assert {*VERDICT_RULES, RULE_LEARNED} <= caption_keys(script, "RULES")
    assert set(SKIP_REASONS) <= caption_keys(script, "REASONS")

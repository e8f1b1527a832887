"""The analysts' page in a real browser: headless Chromium (Debian's package, driven by Playwright) against a
real `rasid serve` on the tiny bundle. Nothing may be fetched from anywhere but the server on 127.0.0.1.

Skipped, with the reason, where /usr/bin/chromium or playwright is missing; .ci/run installs both."""

import csv
import io
import json
import math
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.page_screenshot import ARTICLE, CHROMIUM, CHROMIUM_ARGS, FURNITURE, TARGET
from tests.test_server_process import running_server

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
expect = sync_api.expect

KEY = "page-test-key"
SMALL_BODY = 2048  # bytes: ARTICLE fits (about 700 bytes as JSON), four copies of it do not


@pytest.fixture(scope="module")
def plain_server(trained_bundle, tmp_path_factory):
    with running_server(trained_bundle, tmp_path_factory.mktemp("page") / "serve.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def guarded_server(trained_bundle, tmp_path_factory):
    """An API key and a small body limit (413s come cheap)."""
    with pytest.MonkeyPatch.context() as env:  # the child process inherits these
        env.setenv("RASID_API_KEY", KEY)
        env.setenv("RASID_MAX_BODY_BYTES", str(SMALL_BODY))
        env.setenv("RASID_MAX_TARGET_CHARS", "60")
        with running_server(trained_bundle, tmp_path_factory.mktemp("page-key") / "serve.log") as (url, _):
            yield url


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:
        yield p


@contextmanager
def browser_page(playwright, tmp_path):
    """A page in a fresh profile. Requests anywhere but 127.0.0.1 are refused and recorded in `.outside`."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        accept_downloads=True,
        viewport={"width": 1280, "height": 900},
        locale="ar",
    )
    outside = []

    def only_loopback(route):
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.pages[0] if context.pages else context.new_page()
    page.outside = outside
    try:
        yield page
    finally:
        context.close()


def analyze(page, article=ARTICLE, target=TARGET, threshold=""):
    page.fill("#article", article)
    page.fill("#target", target)
    page.fill("#abstain", threshold)
    page.click("#analyze")


def test_an_article_shows_paragraphs_verdicts_and_skipped_lines(playwright, plain_server, tmp_path):
    expected = httpx.post(plain_server + "/v1/analyze", json={"text": ARTICLE, "target": TARGET}, timeout=60).json()
    model = httpx.get(plain_server + "/v1/model").json()
    with browser_page(playwright, tmp_path) as page:
        page.goto(plain_server + "/")
        for task in model["tasks"]:  # the model panel: tasks, their labels, the base
            panel = page.locator(f'#model-info [data-task="{task["name"]}"]')
            for label in task["labels"]:
                expect(panel).to_contain_text(label)
        expect(page.locator("#model-info")).to_contain_text(model["base_model"])

        analyze(page)
        paragraphs = page.locator("#paragraphs > li")
        expect(paragraphs).to_have_count(len(expected["paragraphs"]))
        assert page.locator("#paragraphs .text").all_inner_texts() == [p["text"] for p in expected["paragraphs"]]
        for k, paragraph in enumerate(expected["paragraphs"]):
            shown = paragraphs.nth(k)
            expect(shown.locator('[data-task="topic"] .chip')).to_contain_text(
                paragraph["predictions"]["topic"]["label"]
            )
            for task in ("stance", "claim"):  # pair tasks: a bar labelled with the label and its score
                bar = shown.locator(f'.bar-row[data-task="{task}"]')
                expect(bar).to_contain_text(paragraph["predictions"][task]["label"])
                expect(bar).to_contain_text(f"{math.floor(paragraph['predictions'][task]['score'] * 100 + 0.5)}%")
        for task, verdict in expected["predictions"].items():
            shown = page.locator(f'#verdicts .verdict[data-task="{task}"]')
            expect(shown).to_contain_text(verdict["label"])
            expect(shown).to_contain_text(verdict["rule"])

        skipped = page.locator("#skipped-list")
        expect(page.locator("#skipped-summary")).to_contain_text(str(len(expected["skipped"])))
        expect(skipped).to_be_hidden()  # collapsed until asked for
        page.click("#skipped-summary")
        expect(skipped).to_contain_text(FURNITURE)
        for line in expected["skipped"]:  # greyed out, with the reason
            shown = skipped.locator("li", has_text=line["text"])
            expect(shown.locator(".reason")).to_contain_text(line["reason"])
            assert shown.evaluate("e => getComputedStyle(e).color") != page.locator(".paragraph .text").first.evaluate(
                "e => getComputedStyle(e).color"
            )
        expect(page.locator("#error")).to_be_hidden()
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        with page.expect_download() as download:
            page.click("#download-json")
        saved = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert saved["paragraphs"] == expected["paragraphs"] and saved["predictions"] == expected["predictions"]
        assert saved["request"] == {"target": TARGET, "abstain_below": None}
        with page.expect_download() as download:
            page.click("#download-csv")
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
        tasks = len(expected["predictions"])
        assert len(rows) == tasks + tasks * len(expected["paragraphs"]) + len(expected["skipped"])
        assert {r["text"] for r in rows if r["kind"] == "skipped"} == {s["text"] for s in expected["skipped"]}
        assert page.outside == []


def test_paragraphs_below_the_threshold_are_marked_uncertain(playwright, plain_server, tmp_path):
    with browser_page(playwright, tmp_path) as page:
        page.goto(plain_server + "/")
        analyze(page, threshold="1")  # every calibrated score is below 1
        paragraphs = page.locator("#paragraphs > li")
        expect(paragraphs.first).to_be_visible()
        for k in range(paragraphs.count()):
            expect(paragraphs.nth(k)).to_have_class("paragraph uncertain")
            expect(paragraphs.nth(k).locator(".badge").first).to_contain_text("غير مؤكد")
        expect(page.locator("#verdicts .badge").first).to_contain_text("غير مؤكد")


def test_a_chosen_file_fills_the_article(playwright, plain_server, tmp_path):
    rows = [{"text": line, "target": TARGET} for line in ARTICLE.splitlines()]
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    with browser_page(playwright, tmp_path) as page:
        page.goto(plain_server + "/")
        page.set_input_files(
            "#file", files=[{"name": "article.txt", "mimeType": "text/plain", "buffer": ARTICLE.encode()}]
        )
        expect(page.locator("#article")).to_have_value(ARTICLE)
        page.set_input_files(
            "#file", files=[{"name": "paragraphs.jsonl", "mimeType": "application/jsonl", "buffer": jsonl}]
        )
        expect(page.locator("#article")).to_have_value(ARTICLE.rstrip("\n"))  # the rows' texts, one a line
        expect(page.locator("#target")).to_have_value(TARGET)
        page.set_input_files(
            "#file",
            files=[{"name": "bad.jsonl", "mimeType": "application/jsonl", "buffer": b'{"text": "ok"}\n{"text": \n'}],
        )
        expect(page.locator("#error")).to_contain_text("السطر 2")


def test_a_server_without_abstain_below_gets_the_marks_from_the_page(playwright, plain_server, tmp_path):
    """A server from before abstain_below refuses it as an unknown field: the page asks again without it
    and marks the predictions below the threshold itself."""
    with browser_page(playwright, tmp_path) as page:

        def older_server(route):
            if "abstain_below" in json.loads(route.request.post_data or "{}"):
                route.fulfill(
                    status=422,
                    json={
                        "detail": "body.abstain_below: is not a known field",
                        "errors": [{"field": "body.abstain_below", "message": "is not a known field"}],
                    },
                )
            else:
                route.fallback()

        page.route("**/v1/analyze", older_server)
        page.goto(plain_server + "/")
        analyze(page, threshold="1")
        expect(page.locator("#paragraphs > li").first).to_have_class("paragraph uncertain")
        expect(page.locator("#notices")).to_contain_text("لا يعرف عتبة عدم اليقين")
        expect(page.locator("#error")).to_be_hidden()


def test_with_an_api_key_the_page_asks_once_and_sends_it_as_a_bearer_token(playwright, guarded_server, tmp_path):
    with browser_page(playwright, tmp_path) as page:
        requests = []
        page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
        page.goto(guarded_server + "/")
        expect(page.locator("#key-form")).to_be_visible()
        page.fill("#api-key", "not-the-key")
        page.click("#key-form button")
        expect(page.locator("#key-message")).to_contain_text("رفض الخادم")
        page.fill("#api-key", KEY)
        page.click("#key-form button")
        expect(page.locator("#key-form")).to_be_hidden()
        expect(page.locator("#model-info")).to_contain_text("topic")

        for _ in range(2):  # the key is kept for the session: no second prompt
            analyze(page)
            expect(page.locator("#paragraphs > li").first).to_be_visible()
            expect(page.locator("#key-form")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('rasid-api-key')") == KEY
        assert all(KEY not in url for url, _ in requests)
        answered = [auth for url, auth in requests if "/v1/analyze" in url]
        assert answered and all(auth == f"Bearer {KEY}" for auth in answered)
        assert page.outside == []


def test_api_errors_appear_as_a_sentence(playwright, guarded_server, tmp_path):
    with browser_page(playwright, tmp_path) as page:
        page.goto(guarded_server + "/")
        page.fill("#api-key", KEY)
        page.click("#key-form button")
        expect(page.locator("#model-info")).to_contain_text("topic")

        analyze(page, article=ARTICLE * 4)  # over RASID_MAX_BODY_BYTES: 413
        error = page.locator("#error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("أكبر مما يقبله الخادم")
        page.screenshot(path=str(tmp_path / "too-large.png"))

        analyze(page, target="هدف طويل جدًا " * 10)  # over RASID_MAX_TARGET_CHARS: 422 naming the field
        expect(error).to_contain_text("لم يقبل الخادم الطلب")
        expect(error).to_contain_text("body.target")

        analyze(page)  # a good request clears the error
        expect(page.locator("#paragraphs > li").first).to_be_visible()
        expect(error).to_be_hidden()

"""Fair limits for documents: caps per article, a long article that cannot starve short requests, admission by
expected wait (429 + Retry-After at once instead of a 504 later), and a bundle that fails to load stopping
`rasid serve`. Ordering and events, never timing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import pytest
from fastapi.testclient import TestClient

from serving.api.batcher import Batcher, QueueFull
from serving.api.main import create_app
from serving.api.settings import Settings
from serving.predictor import Item, ItemResult
from tests.samples import TOPIC
from tests.test_api import wait_ready

GUARD_S = 30  # how long an event may take before the test gives up: a hang guard, never an assertion
ARTICLE_40 = "\n".join(
    f"أعلنت الوزارة في بيانها رقم {k} أن العمل في المشروع الجديد مستمر رغم الصعوبات." for k in range(40)
)


def echo_predict(calls: list, hold: threading.Event | None = None):
    """A model double: records each call's texts; with `hold`, the first call waits until it is set."""

    def predict(items, tasks):
        calls.append([i.text for i in items])
        if hold is not None and len(calls) == 1:
            assert hold.wait(GUARD_S)
        return [ItemResult(predictions={"echo": {"label": i.text}}) for i in items]

    return predict


# --- the batcher ----------------------------------------------------------------------------------------


def test_a_short_request_shares_the_next_batch_with_a_long_one_and_is_answered_first():
    calls, hold = [], threading.Event()

    async def scenario():
        batcher = Batcher(echo_predict(calls, hold), max_batch_size=4, max_wait_ms=0, max_queue_items=100)
        batcher.start()
        long = asyncio.ensure_future(batcher.submit([Item(f"p{k}") for k in range(20)]))
        while not calls:  # the long request's first batch is in the model (held there)
            await asyncio.sleep(0.01)
        short = asyncio.ensure_future(batcher.submit([Item("short")]))
        await asyncio.sleep(0)  # queued behind the long request's remaining 16 texts
        hold.set()
        answer = await short
        long_was_done = long.done()
        rest = await long
        await batcher.stop()
        return answer, long_was_done, rest

    answer, long_was_done, rest = asyncio.run(scenario())
    assert [r.predictions["echo"]["label"] for r in answer] == ["short"]
    assert long_was_done is False  # answered while the long request was still being processed
    assert "short" in calls[1]  # the very next model call, not after the 16 texts queued before it
    assert [r.predictions["echo"]["label"] for r in rest] == [f"p{k}" for k in range(20)]  # order kept
    assert all(len(call) <= 4 for call in calls)


def test_a_lone_long_request_still_fills_whole_batches():
    calls = []

    async def scenario():
        batcher = Batcher(echo_predict(calls), max_batch_size=8, max_wait_ms=0, max_queue_items=100)
        batcher.start()
        await batcher.submit([Item(f"p{k}") for k in range(20)])
        await batcher.stop()

    asyncio.run(scenario())
    assert [len(call) for call in calls] == [8, 8, 4]


def test_admission_refuses_at_once_a_request_whose_expected_wait_is_past_the_limit():
    async def scenario():
        batcher = Batcher(
            echo_predict([]), max_batch_size=32, max_wait_ms=0, max_queue_items=100, max_expected_wait_s=1.0
        )  # slices of 8 texts
        queued = asyncio.ensure_future(batcher.submit([Item(f"q{k}") for k in range(12)]))
        await asyncio.sleep(0)  # no worker yet: 12 texts wait
        assert batcher.expected_wait(1) is None  # nothing measured yet
        batcher.throughput = 10.0  # as measured: 10 texts/s
        with pytest.raises(QueueFull, match="more than the 1.0 s") as refused:
            await batcher.submit([Item("x")] * 8)  # one slice of the 12 (8) and its own 8: 1.6 s
        accepted = asyncio.ensure_future(batcher.submit([Item("y")] * 2))  # 8 + 2 texts: 1.0 s, in time
        await asyncio.sleep(0)
        batcher.start()
        await batcher.stop()
        return refused.value.retry_after, await queued, await accepted, batcher.throughput

    retry_after, queued, accepted, throughput = asyncio.run(scenario())
    assert retry_after == 1  # ceil(1.6 - 1.0): when enough will have been served
    assert len(queued) == 12 and len(accepted) == 2
    assert throughput > 0  # the batcher measured its own calls


def test_the_expected_wait_of_a_short_request_does_not_count_the_long_article_ahead_of_it():
    async def scenario():
        batcher = Batcher(
            echo_predict([]), max_batch_size=32, max_wait_ms=0, max_queue_items=500, max_expected_wait_s=5.0
        )
        article = asyncio.ensure_future(batcher.submit([Item(f"p{k}") for k in range(100)]))
        await asyncio.sleep(0)
        batcher.throughput = 10.0  # 100 queued texts: 10 s of work, twice the limit
        assert batcher.expected_wait(1) == pytest.approx(0.9)  # one slice of the article, then it
        single = asyncio.ensure_future(batcher.submit([Item("short")]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):  # a second article would wait for all of the first: 20 s
            await batcher.submit([Item(f"r{k}") for k in range(100)])
        batcher.start()
        await batcher.stop()
        return await single, await article

    single, article = asyncio.run(scenario())
    assert len(single) == 1 and len(article) == 100


def test_an_empty_queue_takes_a_request_whatever_its_expected_wait():
    async def scenario():
        batcher = Batcher(
            echo_predict([]), max_batch_size=4, max_wait_ms=0, max_queue_items=3, max_expected_wait_s=0.001
        )
        batcher.throughput = 1.0
        batcher.start()
        answers = await batcher.submit([Item(f"a{k}") for k in range(6)])  # bigger than both limits
        await batcher.stop()
        return answers

    assert len(asyncio.run(scenario())) == 6


# --- over HTTP ------------------------------------------------------------------------------------------

LIMITS = dict(max_article_chars=5000, max_article_paragraphs=50, max_batch_size=4, max_wait_ms=0)


@pytest.fixture(scope="module")
def client(trained_bundle):
    with TestClient(create_app(Settings(model_dir=trained_bundle, **LIMITS))) as client:
        wait_ready(client)
        yield client


def test_a_single_paragraph_is_answered_while_a_long_article_is_being_processed(client):
    batcher = client.app.state.service.batcher
    single = TOPIC[0][0]
    calls, finished = [], []
    single_queued, single_answered, gave_up = threading.Event(), threading.Event(), threading.Event()
    real_predict, real_submit = batcher._predict, batcher.submit

    def predict(items, tasks):
        texts = [i.text for i in items]
        calls.append(texts)
        if len(calls) == 1 and not single_queued.wait(GUARD_S):  # the article's first batch
            gave_up.set()
        elif single not in texts and any(single in call for call in calls) and not gave_up.is_set():
            if not single_answered.wait(GUARD_S):  # the article's next batches wait for the single's answer
                gave_up.set()
        return real_predict(items, tasks)

    async def submit(items, tasks=None):
        if [i.text for i in items] == [single]:
            single_queued.set()  # the article's first batch may go on: the single is queued as it returns
        return await real_submit(items, tasks)

    def ask(name, path, body):
        response = client.post(path, json=body)
        finished.append((name, response.status_code))
        if name == "single":
            single_answered.set()

    batcher._predict, batcher.submit = predict, submit
    try:
        article = threading.Thread(target=ask, args=("article", "/v1/analyze", {"text": ARTICLE_40}))
        article.start()
        while not calls and article.is_alive():  # the article's paragraphs have reached the model
            threading.Event().wait(0.01)
        ask("single", "/v1/classify", {"text": single})
        article.join(GUARD_S * 3)
    finally:
        batcher._predict, batcher.submit = real_predict, real_submit
    assert not gave_up.is_set()
    assert finished == [("single", 200), ("article", 200)]
    assert single in calls[1]  # it shared the article's next batch
    assert len(calls) > 3 and all(single not in call for call in calls[2:])  # the article went on afterwards


def test_articles_past_the_paragraph_cap_are_a_422_that_says_so(client):
    response = client.post("/v1/analyze", json={"text": "\n".join(["خبر عن الاقتصاد المحلي اليوم."] * 51)})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "body.text: the article has 51 paragraphs (lines, and pieces of long lines); this server analyses at "
        "most 50 per request (RASID_MAX_ARTICLE_PARAGRAPHS): send it in parts."
    )
    assert (
        client.post("/v1/analyze", json={"text": "\n".join(["خبر عن الاقتصاد المحلي اليوم."] * 50)}).status_code == 200
    )


def test_articles_past_the_character_cap_are_a_422_that_says_so(client):
    response = client.post("/v1/analyze", json={"text": "كلمة " * 1001})
    assert response.status_code == 422
    assert response.json()["detail"] == "body.text: is longer than this server's limit of 5,000 characters"


def test_the_limits_are_published(client):
    limits = client.get("/v1/model").json()["limits"]
    assert limits["max_article_paragraphs"] == 50 and limits["admission_wait_fraction"] == 0.8


def test_a_refusal_for_the_expected_wait_is_a_429_with_its_retry_after(client, monkeypatch):
    async def refuse(items, tasks=None):
        raise QueueFull(
            "about 40.0 s of work is queued at 20 texts/s, more than the 24.0 s this request may wait", retry_after=17
        )

    monkeypatch.setattr(client.app.state.service.batcher, "submit", refuse)
    response = client.post("/v1/classify", json={"text": TOPIC[0][0]})
    assert response.status_code == 429 and response.headers["retry-after"] == "17"
    assert "retry after 17 s" in response.json()["detail"]


# --- a bundle that cannot be loaded ---------------------------------------------------------------------


def _break_heads(bundle):
    manifest = json.loads((bundle / "rasid.json").read_text(encoding="utf-8"))
    manifest["tasks"][0]["labels"] = [*manifest["tasks"][0]["labels"], "extra"]  # one label more than its head
    (bundle / "rasid.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def _damage_weights(bundle):
    with open(bundle / "model.safetensors", "r+b") as handle:
        handle.write(b"\xff" * 64)  # the header is gone


@pytest.mark.parametrize(
    "damage, sentence",
    [
        (_break_heads, "does not match its"),
        (_damage_weights, "could not be loaded"),
    ],
)
def test_rasid_serve_exits_non_zero_with_a_sentence_when_the_bundle_cannot_be_loaded(bundle_copy, damage, sentence):
    from tests.test_server_process import free_port

    damage(bundle_copy)
    result = subprocess.run(
        [sys.executable, "-m", "training", "serve", "--model", str(bundle_copy), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("rasid serve: error:")]
    assert error and "the model" in error[0] and sentence in result.stderr

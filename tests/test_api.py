"""The HTTP service, route by route: answers, limits and error statuses (TestClient, tiny bundle)."""

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from serving.api.batcher import Batcher, QueueFull
from serving.api.main import create_app
from serving.api.settings import Settings
from serving.bundle import read_manifest
from serving.precision import fast_precision
from serving.predictor import Item, ItemResult, Predictor
from tests.samples import ARTICLE, CLAIM, STANCE, TOPIC

LIMITS = dict(
    max_text_chars=300,
    max_target_chars=50,
    max_article_chars=2000,
    max_batch_items=3,
    max_body_bytes=20_000,
    max_queue_items=8,
    max_batch_size=4,
    max_wait_ms=2,
)


def wait_ready(client: TestClient) -> None:
    for _ in range(600):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"never ready: {client.get('/readyz').json()}")


@pytest.fixture(scope="module")
def client(trained_bundle):
    with TestClient(create_app(Settings(model_dir=trained_bundle, **LIMITS))) as client:
        wait_ready(client)
        yield client


def service(client):
    return client.app.state.service


# --- classify -------------------------------------------------------------------------------------------


def test_classify_runs_single_tasks_and_skips_pair_tasks_without_a_target(client):
    text = TOPIC[0][0]
    response = client.post("/v1/classify", json={"text": text})
    assert response.status_code == 200
    body = response.json()
    expected = service(client).predictor.predict_items([Item(text)])[0]
    assert list(body["predictions"]) == ["topic"]
    assert body["predictions"]["topic"]["label"] == expected.predictions["topic"]["label"]
    assert body["predictions"]["topic"]["scores"] == pytest.approx(expected.predictions["topic"]["scores"], abs=1e-5)
    assert sorted(body["skipped_tasks"]) == ["claim", "stance"]
    assert body["truncated"] is False
    assert body["model"]["tasks"] == service(client).predictor.task_names


def test_classify_with_a_target_runs_every_task(client):
    target, text, _ = STANCE[0]
    response = client.post("/v1/classify", json={"text": text, "target": target})
    assert response.status_code == 200
    assert set(response.json()["predictions"]) == {"topic", "stance", "claim"}
    assert response.json()["skipped_tasks"] == []
    assert sum(response.json()["predictions"]["stance"]["scores"].values()) == pytest.approx(1.0, abs=1e-4)


def test_classify_runs_only_the_tasks_asked(client):
    response = client.post("/v1/classify", json={"text": TOPIC[1][0], "tasks": ["topic"]})
    assert response.status_code == 200
    assert list(response.json()["predictions"]) == ["topic"] and response.json()["skipped_tasks"] == []


def test_a_pair_task_without_a_target_is_a_422_that_says_so(client):
    response = client.post("/v1/classify", json={"text": TOPIC[0][0], "tasks": ["stance"]})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.target: ")
    assert "target" in response.json()["detail"].split(": ", 1)[1]


def test_texts_longer_than_the_window_or_the_char_limit_are_truncated_and_say_so(client):
    long = " ".join([TOPIC[0][0]] * 20)  # past both the 64-token window and max_text_chars=300
    assert len(long) > LIMITS["max_text_chars"]
    response = client.post("/v1/classify", json={"text": long})
    assert response.status_code == 200
    assert response.json()["truncated"] is True


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"text": ""}, "body.text: "),
        ({"text": "   \n\t "}, "body.text: must not be empty or whitespace only"),
        ({"text": 5}, "body.text: must be a string"),
        ({}, "body.text: is required"),
        ({"text": "نص", "target": " "}, "body.target: must not be empty or whitespace only"),
        ({"text": "نص", "target": "هدف" * 20}, "body.target: "),
        ({"text": "نص", "tasks": ["topic", "nope"]}, "body.tasks: unknown task(s) ['nope']"),
        ({"text": "نص", "tasks": []}, "body.tasks: "),
        ({"text": "نص", "tasks": ["topic", "topic"]}, "body.tasks: must not name a task twice"),
        ({"text": "نص", "taget": "x"}, "body.taget: is not a known field"),
        (["نص"], "body: must be a JSON object"),
    ],
)
def test_bad_classify_bodies_are_422_naming_the_field(client, body, detail):
    response = client.post("/v1/classify", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)
    assert response.json()["errors"][0]["field"] == detail.split(":")[0]


@pytest.mark.parametrize(
    "raw, detail",
    [
        (b'{"text": "abc"', "body: is not valid JSON"),
        (b'{"text": "\xff\xfe abc"}', "body: is not valid UTF-8"),
        (b'{"text": "\\ud800 abc"}', "body.text: must be valid Unicode text"),  # a lone surrogate
        (b"", "body: is required"),
    ],
)
def test_malformed_bodies_are_422(client, raw, detail):
    response = client.post("/v1/classify", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/classify", {"text": "\u064e\u0650\u0651"}, "body.text"),  # diacritics only
        ("/v1/classify", {"text": "\u0640\u0640\u0640"}, "body.text"),  # tatweel
        ("/v1/classify", {"text": "\x00\x00 \x00"}, "body.text"),  # NULs
        ("/v1/classify", {"text": "\u200b\u200c\u2060\ufeff"}, "body.text"),  # zero-width characters
        ("/v1/classify", {"text": "\u202b\u202e\u2066\u200f"}, "body.text"),  # bidi controls
        ("/v1/classify", {"text": "نص", "target": "\u064b\u200b"}, "body.target"),
        ("/v1/classify/batch", {"inputs": [{"text": "نص"}, {"text": "\u0640\u064e"}]}, "body.inputs.1.text"),
        ("/v1/analyze", {"text": "\u064e\n\u0640\u200b\n"}, "body.text"),
    ],
)
def test_text_that_normalises_to_nothing_is_a_422_that_says_so(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"{field}: holds nothing to classify once normalised: only diacritics, "
        "tatweel, control, zero-width or bidi characters"
    )


# --- batch ----------------------------------------------------------------------------------------------


def test_batch_answers_in_input_order_as_single_requests_would(client):
    inputs = [{"text": TOPIC[6][0]}, {"text": STANCE[2][1], "target": STANCE[2][0]}, {"text": TOPIC[12][0]}]
    response = client.post("/v1/classify/batch", json={"inputs": inputs})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    for one, result in zip(inputs, results):
        single = client.post("/v1/classify", json=one).json()
        assert {t: p["label"] for t, p in result["predictions"].items()} == {
            t: p["label"] for t, p in single["predictions"].items()
        }
        for task, prediction in result["predictions"].items():
            assert prediction["scores"] == pytest.approx(single["predictions"][task]["scores"], abs=1e-5)
    assert sorted(results[0]["skipped_tasks"]) == ["claim", "stance"] and results[1]["skipped_tasks"] == []


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"inputs": [{"text": "نص"}] * 4}, "body.inputs: "),
        ({"inputs": []}, "body.inputs: "),
        ({"inputs": [{"text": "نص"}, {"text": " "}]}, "body.inputs.1.text: must not be empty"),
        ({"inputs": [{"text": "نص", "target": "هدف"}, {"text": "نص"}], "tasks": ["claim"]}, "body.inputs.1.target: "),
    ],
)
def test_bad_batches_are_422_naming_the_item(client, body, detail):
    response = client.post("/v1/classify/batch", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


# --- analyze --------------------------------------------------------------------------------------------


def test_analyze_splits_the_article_skips_boilerplate_and_gives_verdicts(client):
    response = client.post("/v1/analyze", json={"text": ARTICLE, "target": CLAIM[0][0]})
    assert response.status_code == 200
    body = response.json()
    assert len(body["paragraphs"]) == 2
    assert all(ARTICLE[p["start"] : p["end"]] == p["text"] for p in body["paragraphs"] + body["skipped"])
    assert any("فيسبوك" in s["text"] for s in body["skipped"])
    assert set(body["predictions"]) == {"topic", "stance", "claim"}
    assert body["empty"] is False and body["model"]["base_model"]


def test_analyze_refuses_articles_past_the_limit_with_422(client):
    response = client.post("/v1/analyze", json={"text": "كلمة " * 500})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.text: ")


def test_an_article_of_boilerplate_only_is_empty_not_guessed(client):
    response = client.post("/v1/analyze", json={"text": "شارك على فيسبوك\nجميع الحقوق محفوظة"})
    assert response.status_code == 200
    assert response.json()["empty"] is True and response.json()["predictions"] == {}


# --- abstention -----------------------------------------------------------------------------------------


def test_abstain_below_answers_uncertain_and_keeps_the_scores_on_every_route(client):
    text = TOPIC[0][0]
    plain = client.post("/v1/classify", json={"text": text}).json()["predictions"]["topic"]
    unsure = client.post("/v1/classify", json={"text": text, "abstain_below": 1.0}).json()["predictions"]["topic"]
    assert unsure["label"] == "uncertain" and unsure["scores"] == plain["scores"]  # nothing is 100% sure
    low = client.post("/v1/classify", json={"text": text, "abstain_below": 0.01}).json()["predictions"]["topic"]
    assert low["label"] == plain["label"]
    batch = client.post(
        "/v1/classify/batch", json={"inputs": [{"text": text}, {"text": TOPIC[7][0]}], "abstain_below": 1.0}
    ).json()
    assert [r["predictions"]["topic"]["label"] for r in batch["results"]] == ["uncertain", "uncertain"]
    article = client.post("/v1/analyze", json={"text": ARTICLE, "abstain_below": 1.0}).json()
    assert article["predictions"]["topic"]["label"] == "uncertain"
    assert all(p["predictions"]["topic"]["label"] == "uncertain" for p in article["paragraphs"])
    # a threshold belongs to its request: the shared model batches never abstain
    assert client.post("/v1/classify", json={"text": text}).json()["predictions"]["topic"] == plain


@pytest.mark.parametrize(
    "route, body",
    [
        ("/v1/classify", {"text": "نص"}),
        ("/v1/classify/batch", {"inputs": [{"text": "نص"}]}),
        ("/v1/analyze", {"text": "نص"}),
    ],
)
@pytest.mark.parametrize("threshold", [0, 1.5, "high"])
def test_abstain_below_outside_zero_to_one_is_a_422(client, route, body, threshold):
    response = client.post(route, json={**body, "abstain_below": threshold})
    assert response.status_code == 422 and response.json()["detail"].startswith("body.abstain_below: ")


# --- model, health, metrics ----------------------------------------------------------------------------


def test_model_describes_tasks_labels_inputs_metrics_and_limits(client, trained_bundle):
    response = client.get("/v1/model")
    assert response.status_code == 200
    body = response.json()
    manifest = read_manifest(trained_bundle)
    assert body["tasks"] == [
        {
            "name": t.name,
            "labels": list(t.labels),
            "input": t.input,
            "open_targets": manifest.targets.get(t.name, {}).get("open"),
            "targets": manifest.targets.get(t.name, {}).get("counts"),
        }
        for t in manifest.tasks
    ]
    assert body["max_length"] == manifest.max_length and body["base_model"] == manifest.base_model
    assert body["metrics"] == manifest.metrics.get("validation", {})
    assert body["limits"]["max_batch_items"] == 3
    assert body["backend"] == f"torch-{fast_precision(manifest)}"  # the bundle's fast path (tests/test_fast_path.py)


def test_the_precision_setting_chooses_the_encoders_arithmetic(trained_bundle):
    with TestClient(create_app(Settings(model_dir=trained_bundle, precision="int8"))) as client:
        wait_ready(client)
        assert client.get("/v1/model").json()["backend"] == "torch-int8"
        response = client.post("/v1/classify", json={"text": TOPIC[3][0]})
        assert response.status_code == 200 and set(response.json()["predictions"]) == {"topic"}


def test_an_unknown_precision_is_refused_at_start():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="precision"):
        Settings(precision="fp8")


def test_health_and_metrics(client):
    client.post("/v1/classify", json={"text": TOPIC[3][0]})
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready", "detail": None}
    assert client.get("/nowhere").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'rasid_requests_total{route="/v1/classify",status="200"}' in text
    assert 'rasid_requests_total{route="other",status="404"}' in text
    assert "rasid_request_duration_seconds_bucket" in text
    assert "rasid_batch_size_count" in text and "rasid_queue_depth 0.0" in text


# --- limits and failures --------------------------------------------------------------------------------


def test_bodies_over_the_byte_limit_are_413(client):
    big = {"text": "ن" * 15_000}  # 30 kB of UTF-8 > max_body_bytes=20000
    response = client.post("/v1/classify", json=big)
    assert response.status_code == 413
    chunked = client.post(
        "/v1/classify", content=(b"x" * 5000 for _ in range(5)), headers={"content-type": "application/json"}
    )  # no Content-Length: counted while read
    assert chunked.status_code == 413


def test_a_full_queue_is_429_with_retry_after(client, monkeypatch):
    async def refuse(items, tasks=None):
        raise QueueFull("8 texts are waiting; the limit is 8")

    monkeypatch.setattr(service(client).batcher, "submit", refuse)
    response = client.post("/v1/classify", json={"text": TOPIC[0][0]})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_a_request_past_the_timeout_is_504(trained_bundle):
    release = threading.Event()
    with TestClient(create_app(Settings(model_dir=trained_bundle, request_timeout_s=0.2))) as client:
        wait_ready(client)
        service(client).batcher._predict = lambda items, tasks: release.wait(30) and []
        response = client.post("/v1/classify", json={"text": TOPIC[0][0]})
        release.set()
    assert response.status_code == 504
    assert "RASID_REQUEST_TIMEOUT_S" in response.json()["detail"]


def test_a_bug_is_a_logged_500_without_internals(trained_bundle):
    with TestClient(create_app(Settings(model_dir=trained_bundle)), raise_server_exceptions=False) as client:
        wait_ready(client)
        service(client).batcher._predict = lambda items, tasks: 1 / 0
        response = client.post("/v1/classify", json={"text": TOPIC[0][0]})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error: it has been logged."}


def test_the_api_key_guards_v1_routes_only(trained_bundle):
    with TestClient(create_app(Settings(model_dir=trained_bundle, api_key="s3cret"))) as client:
        wait_ready(client)
        assert client.get("/v1/model").status_code == 401
        assert client.get("/v1/model", headers={"Authorization": "Bearer wrong"}).status_code == 401
        unauthenticated_bad_json = client.post("/v1/classify", content=b"{")
        assert unauthenticated_bad_json.status_code == 401
        assert unauthenticated_bad_json.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_readyz_is_503_while_the_model_loads_and_healthz_answers(trained_bundle, monkeypatch):
    loading = threading.Event()
    real = Predictor.from_bundle.__func__
    monkeypatch.setattr(
        Predictor, "from_bundle", classmethod(lambda cls, *a, **k: loading.wait(30) and real(cls, *a, **k))
    )
    with TestClient(create_app(Settings(model_dir=trained_bundle))) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503 and client.get("/readyz").json()["status"] == "loading"
        assert client.post("/v1/classify", json={"text": "نص"}).status_code == 503
        loading.set()
        wait_ready(client)
        assert client.post("/v1/classify", json={"text": TOPIC[0][0]}).status_code == 200


def test_the_model_is_loaded_and_run_in_one_thread_only(trained_bundle, monkeypatch):
    threads = []  # torch in two threads means two OpenMP teams fighting for the cores
    load, predict = Predictor.from_bundle.__func__, Predictor.predict_items
    monkeypatch.setattr(
        Predictor,
        "from_bundle",
        classmethod(lambda cls, *a, **k: threads.append(threading.get_ident()) or load(cls, *a, **k)),
    )
    monkeypatch.setattr(
        Predictor,
        "predict_items",
        lambda self, *a, **k: threads.append(threading.get_ident()) or predict(self, *a, **k),
    )
    with TestClient(create_app(Settings(model_dir=trained_bundle))) as client:
        wait_ready(client)
        for text, _ in TOPIC[:3]:
            assert client.post("/v1/classify", json={"text": text}).status_code == 200
        assert client.post("/v1/analyze", json={"text": ARTICLE}).status_code == 200
    assert len(threads) >= 5 and len(set(threads)) == 1
    assert threads[0] != threading.main_thread().ident


def test_without_a_model_folder_readyz_says_why(tmp_path):
    with TestClient(create_app(Settings(model_dir=None))) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "rasid serve --model" in response.json()["detail"]
        assert client.get("/v1/model").status_code == 503


def test_settings_come_from_rasid_env_and_are_checked(monkeypatch):
    monkeypatch.setenv("RASID_MAX_BATCH_ITEMS", "7")
    assert Settings().max_batch_items == 7
    with pytest.raises(ValueError, match="max_queue_items"):
        Settings(max_queue_items=2, max_batch_items=3)


# --- the batcher ----------------------------------------------------------------------------------------


def fake_predict(calls):
    def predict(items, tasks):
        calls.append(len(items))
        return [ItemResult(predictions={"echo": {"label": i.text}}) for i in items]

    return predict


def test_the_batcher_groups_concurrent_requests_and_keeps_order():
    calls = []

    async def scenario():
        batcher = Batcher(fake_predict(calls), max_batch_size=8, max_wait_ms=200, max_queue_items=100)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([Item(f"t{k}"), Item(f"u{k}")]) for k in range(4)))
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert [[r.predictions["echo"]["label"] for r in a] for a in answers] == [[f"t{k}", f"u{k}"] for k in range(4)]
    assert calls == [8]


def test_the_batcher_refuses_past_its_queue_and_drains_on_stop():
    calls = []

    async def scenario():
        batcher = Batcher(fake_predict(calls), max_batch_size=2, max_wait_ms=0, max_queue_items=3)
        first = asyncio.ensure_future(batcher.submit([Item("a"), Item("b"), Item("c")]))
        await asyncio.sleep(0)  # queued, and no worker started yet: the queue holds 3
        with pytest.raises(QueueFull):
            await batcher.submit([Item("d")])
        batcher.start()
        await batcher.stop()  # stop drains what was queued before it
        return await first

    assert [r.predictions["echo"]["label"] for r in asyncio.run(scenario())] == ["a", "b", "c"]
    assert calls == [2, 1]

"""The real `rasid serve` process: concurrent clients get the single-request answers; SIGTERM exits 0."""

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from tests.samples import CLAIM, STANCE, TOPIC


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(bundle, log_path, *options):
    """`rasid serve` on a free loopback port, yielded once /readyz says the model is loaded."""
    port = free_port()
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "training", "serve", "--model", str(bundle), "--port", str(port), *options],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # the model loads in the background; /readyz says when
            assert process.poll() is None, f"rasid serve exited early; see {log_path}"
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"rasid serve never became ready; see {log_path}")
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def server(trained_bundle, tmp_path_factory):
    with running_server(trained_bundle, tmp_path_factory.mktemp("serve") / "serve.log", "--max-wait-ms", "20") as s:
        yield s


def bodies() -> list[dict]:
    return (
        [{"text": t} for t, _ in TOPIC[:8]]
        + [{"text": t, "target": g} for g, t, _ in STANCE[:6]]
        + [{"text": t, "target": g} for g, t, _ in CLAIM[:4]]
    )


def test_concurrent_requests_get_the_single_request_answers(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as client:
        alone = [client.post("/v1/classify", json=b).json() for b in bodies()]

    def ask(body):
        with httpx.Client(base_url=url, timeout=60) as client:
            return client.post("/v1/classify", json=body)

    with ThreadPoolExecutor(max_workers=6) as pool:  # several clients at once, so the batcher groups them
        together = list(pool.map(ask, bodies() * 3))
    assert all(r.status_code == 200 for r in together)
    for expected, response in zip(alone * 3, together):
        got = response.json()
        assert {t: p["label"] for t, p in got["predictions"].items()} == {
            t: p["label"] for t, p in expected["predictions"].items()
        }
        for task, prediction in got["predictions"].items():
            assert prediction["scores"] == pytest.approx(expected["predictions"][task]["scores"], abs=1e-5)
        assert got["skipped_tasks"] == expected["skipped_tasks"]
    metrics = httpx.get(url + "/metrics").text
    assert 'rasid_requests_total{route="/v1/classify",status="200"}' in metrics


def test_sigterm_finishes_in_flight_work_and_exits_zero(server):
    url, process = server
    with ThreadPoolExecutor(max_workers=4) as pool:
        pending = [
            pool.submit(httpx.post, url + "/v1/classify/batch", json={"inputs": bodies()[:8]}, timeout=60)
            for _ in range(4)
        ]
        time.sleep(0.2)  # let some of them reach the server; those that do must still be answered
        process.send_signal(signal.SIGTERM)
        outcomes = []
        for future in pending:
            try:
                outcomes.append(future.result().status_code)
            except httpx.TransportError:
                outcomes.append("refused")  # arrived after the listener closed: never a half answer
    assert process.wait(timeout=60) == 0
    assert set(outcomes) <= {200, "refused"}


def test_a_folder_that_is_not_a_bundle_fails_before_the_port_opens(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training", "serve", "--model", str(tmp_path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "rasid serve: error:" in result.stderr and "rasid.json" in result.stderr

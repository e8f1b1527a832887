"""Serving benchmark: `rasid serve` vs a plain FastAPI + pipeline app, over HTTP, on the same paragraphs.

    python benchmarks/serving.py --model MODELS/BUNDLE --data VAL.jsonl [--hf-dir EXPORTED | --anchor-model BUNDLE] [--seconds 30] [--rounds 3]

Each server runs alone (so they do not share the CPU), at 1 and 16 concurrent clients; every request asks
topic + stance for one paragraph (stance only where the row has a target). Prints paragraphs/s, p50/p99
latency and rasid's ratio over the anchor. Loopback only; bounded by --seconds and --requests per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    RASID,
    add_anchor_options,
    anchor_checkpoints,
    free_port,
    percentile,
    read_rows,
    start_server,
    stop,
    table,
)


async def load(port: int, bodies: list[dict], clients: int, seconds: float, requests: int) -> dict:
    import httpx

    latencies, errors, next_body = [], 0, iter(range(requests))
    deadline = time.perf_counter() + seconds

    async def client(http):
        nonlocal errors
        for k in next_body:
            if time.perf_counter() > deadline:
                return
            started = time.perf_counter()
            response = await http.post(f"http://127.0.0.1:{port}/v1/classify", json=bodies[k % len(bodies)])
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=clients)) as http:
        await client_warmup(http, port, bodies[0])
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "paragraphs_s": len(latencies) / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "ok": len(latencies),
        "errors": errors,
    }


async def client_warmup(http, port: int, body: dict) -> None:
    for _ in range(3):
        await http.post(f"http://127.0.0.1:{port}/v1/classify", json=body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="rasid bundle")
    parser.add_argument("--data", type=Path, required=True, help="rasid JSONL (text, target)")
    add_anchor_options(parser)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--seconds", type=float, default=30.0, help="per server and concurrency")
    parser.add_argument("--requests", type=int, default=2000, help="at most, per server and concurrency")
    parser.add_argument("--tasks", default="topic,stance")
    parser.add_argument("--serve-args", default="", help="extra `rasid serve` arguments, e.g. '--no-fast'")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rasid and anchor take turns this many times; "
        "the table gives the median round (this machine's speed drifts between minutes)",
    )
    args = parser.parse_args()

    tasks = args.tasks.split(",")
    bodies = [
        {"text": r["text"], "target": r.get("target"), "tasks": [t for t in tasks if t == "topic" or r.get("target")]}
        for r in read_rows(args.data)
    ]
    hf_dir = anchor_checkpoints(args)
    servers = {
        "rasid": lambda port: [
            *RASID,
            "serve",
            "--model",
            str(args.model),
            "--port",
            str(port),
            *shlex.split(args.serve_args),
        ],
        "anchor": lambda port: [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.anchor_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    }
    results = {}  # (server, clients) -> one result per round
    for round_ in range(args.rounds):
        for name, command in servers.items():
            port = free_port()
            process, ready_s = start_server(command(port), port, env={"ANCHOR_MODELS": str(hf_dir)})
            try:
                for clients in map(int, args.clients.split(",")):
                    result = asyncio.run(load(port, bodies, clients, args.seconds, args.requests))
                    results.setdefault((name, clients), []).append(result)
                    print(f"round {round_ + 1} {name} clients={clients}: {result}", flush=True)
            finally:
                stop(process)
    rows = []
    for clients in map(int, args.clients.split(",")):
        rounds = list(zip(results["rasid", clients], results["anchor", clients]))
        ratios = sorted((r["paragraphs_s"] / a["paragraphs_s"], k) for k, (r, a) in enumerate(rounds))
        ratio, k = ratios[len(ratios) // 2]  # the median round, reported whole
        r, a = rounds[k]
        spread = f"{ratios[0][0]:.2f}-{ratios[-1][0]:.2f}"
        rows.append(
            [
                clients,
                r["paragraphs_s"],
                a["paragraphs_s"],
                ratio,
                spread,
                r["p50_ms"],
                a["p50_ms"],
                r["p99_ms"],
                a["p99_ms"],
                sum(x["errors"] + y["errors"] for x, y in rounds),
            ]
        )
    print(f"\nserving, tasks {tasks}, {len(bodies)} paragraphs from {args.data}, {time.strftime('%Y-%m-%d')}")
    print(f"median of {args.rounds} round(s); 'ratios' is the range over rounds")
    print(
        table(
            [
                "clients",
                "rasid para/s",
                "anchor para/s",
                "ratio",
                "ratios",
                "rasid p50 ms",
                "anchor p50 ms",
                "rasid p99 ms",
                "anchor p99 ms",
                "errors",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

"""Memory and cold start: peak RSS of `rasid serve` with the bundle vs the anchor app holding the exported
per-task models in pipelines, and seconds from process start to GET /readyz answering 200.

    python benchmarks/memory.py --model MODELS/BUNDLE --data VAL.jsonl [--hf-dir EXPORTED | --anchor-model BUNDLE] [--requests 50]

Each server answers --requests requests (topic + stance) after it is ready, so the peak includes inference.
"""

from __future__ import annotations

import argparse
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
    peak_rss_mb,
    read_rows,
    start_server,
    stop,
    table,
)


def measure(command, port: int, env: dict, bodies: list[dict]) -> tuple[float, float]:
    import httpx

    process, ready_s = start_server(command, port, env)
    try:
        for body in bodies:
            httpx.post(f"http://127.0.0.1:{port}/v1/classify", json=body, timeout=120.0).raise_for_status()
        return ready_s, peak_rss_mb(process.pid)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    add_anchor_options(parser)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--serve-args", default="", help="extra `rasid serve` arguments")
    args = parser.parse_args()

    bodies = [
        {"text": r["text"], "target": r.get("target"), "tasks": ["topic", "stance"] if r.get("target") else ["topic"]}
        for r in read_rows(args.data, args.requests)
    ]
    hf_dir = anchor_checkpoints(args)
    rows = []
    for name, command in (
        (
            "rasid serve",
            lambda p: [*RASID, "serve", "--model", str(args.model), "--port", str(p), *shlex.split(args.serve_args)],
        ),
        (
            "anchor (pipelines)",
            lambda p: [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.anchor_app:app",
                "--port",
                str(p),
                "--log-level",
                "warning",
            ],
        ),
    ):
        port = free_port()
        ready_s, rss = measure(command(port), port, {"ANCHOR_MODELS": str(hf_dir)}, bodies)
        rows.append([name, rss, ready_s])
    rows = [[*row, row[1] / rows[1][1]] for row in rows]
    print(
        f"\nmemory, {len(bodies)} requests after ready, {time.strftime('%Y-%m-%d')} (goals: RSS <= 700 MB, ready <= 10 s)"
    )
    print(table(["server", "peak RSS MB", "cold start to /readyz s", "RSS ratio to anchor"], rows))


if __name__ == "__main__":
    main()

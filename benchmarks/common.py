"""Shared by the benchmarks: read a rasid JSONL file, export anchor checkpoints, start servers, summarise."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RASID = [sys.executable, "-m", "training"]  # `rasid`, from this checkout's interpreter


def read_rows(path: Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def add_anchor_options(parser) -> None:
    parser.add_argument(
        "--hf-dir", type=Path, help="the anchor's `rasid export --format hf` folder (default: export now)"
    )
    parser.add_argument(
        "--anchor-model",
        type=Path,
        help="the bundle the anchor exports (default: --model). Give "
        "a full-depth bundle when --model was trained with --keep-layers: the plain HF way "
        "fine-tunes the whole base",
    )


def anchor_checkpoints(args) -> Path:
    """The anchor's per-task checkpoints: given, or exported now into a temporary folder."""
    if args.hf_dir:
        return Path(args.hf_dir)
    out = Path(tempfile.mkdtemp(prefix="rasid-bench-hf-"))
    model = args.anchor_model or args.model
    subprocess.run(
        [*RASID, "export", "--model", str(model), "--format", "hf", "--out", str(out)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command: list[str], port: int, env: dict | None = None, timeout: float = 120.0):
    """Start a server process; return (process, seconds until GET /readyz answered 200)."""
    import httpx

    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(
                f"{command[:4]} exited with {process.returncode}: {process.stderr.read().decode()[-2000:]}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"{command[:4]} was not ready within {timeout:.0f} s")


def stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its children, in MB."""
    import psutil

    total = 0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])

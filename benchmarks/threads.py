"""Thread benchmark: `rasid predict` and `rasid serve` alone, beside a busy torch process, and confined to one
CPU (taskset -c 0), each with rasid's thread rule and with torch's old default; prints speeds and ratios.

    python benchmarks/threads.py [--model BUNDLE] [--data FILE.jsonl] [--rows 500] [--seconds 3] [--no-serve | --no-predict]

- rule: what every rasid command does now (serving/threads.py): threads = the CPUs this process may use
  (affinity mask, cgroup quota), OpenMP told to sleep while it waits (OMP_WAIT_POLICY=PASSIVE).
- old: what torch did before: one thread per core of the machine (`--threads` os.cpu_count()) and OpenMP's
  own waiting (OMP_WAIT_POLICY set empty, i.e. unset for OpenMP: it spins before it sleeps).
- beside busy torch: another Python process multiplies 512x512 matrices in a loop with torch's defaults (one
  thread per core, OpenMP's default waiting), as a training run or a second worker would.
- taskset -c 0: the rasid process may run on CPU 0 only (what a CPU quota or a cpuset gives a container).

predict speed is rows/s of the labelling itself: (N rows - 1 row) / (wall of N rows - wall of 1 row), so start-up
(imports, model load) is left out. serve speed is requests/s and p50 from 4 concurrent clients for --seconds.
RASID_THREADS and OMP_* are removed from the environment of every process started here, so the rule decides.
With no --model a tiny bundle (the test suite's: 2 layers, 32 wide) is built into a temporary folder: its
speeds are mostly Python and tokenizer overhead, so ratios, not absolute numbers, are what it shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.common import RASID, free_port, start_server, stop, table  # noqa: E402

BUSY_TORCH = "import torch\na = torch.randn(512, 512)\nwhile True:\n    a = torch.tanh(a @ a)\n"
RULES = ("rule", "old")
CONDITIONS = ("alone", "beside busy torch", "taskset -c 0")


def build_tiny_bundle(folder: Path) -> Path:
    """The test suite's tiny bundle (tests/conftest.py), trained for a few steps on its sample sentences."""
    from tests.conftest import build_tiny_base, sample_rows, tiny_config, write_jsonl
    from training.train import train

    base = build_tiny_base(folder / "base")
    data = write_jsonl(folder / "samples.jsonl", sample_rows())
    return train(tiny_config(data, folder / "bundle", base))


def sample_input(path: Path, rows: int, data: Path | None = None) -> Path:
    """`rows` input rows: from --data (repeated if short), else the test samples (topic, stance, claim mixed)."""
    if data:
        source = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        from tests.conftest import sample_rows

        source = sample_rows()
    with open(path, "w", encoding="utf-8") as handle:
        for k in range(rows):
            row = source[(k * 5) % len(source)]
            handle.write(
                json.dumps(
                    {"id": k, "text": row["text"], **({"target": row["target"]} if row.get("target") else {})},
                    ensure_ascii=False,
                )
                + "\n"
            )
    return path


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "RASID_THREADS" and not k.startswith(("OMP_", "MKL_"))}


def rasid_env(rule: str) -> dict:
    env = clean_env()
    if rule == "old":
        env["OMP_WAIT_POLICY"] = ""  # present, so rasid leaves it; empty, so OpenMP uses its own default
    return env


def rasid_command(rule: str, condition: str, *arguments: str) -> list[str]:
    command = [*RASID, *arguments]
    if rule == "old":
        command += ["--threads", str(os.cpu_count())]
    return (["taskset", "-c", "0"] if condition == "taskset -c 0" else []) + command


class BusyTorch:
    """A torch process computing in a loop, with torch's defaults, for the duration of a `with`."""

    def __init__(self, active: bool):
        self.active, self.process = active, None

    def __enter__(self):
        if self.active:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BUSY_TORCH],
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(3.0)  # torch imported and its threads busy
        return self

    def __exit__(self, *exc):
        if self.process:
            self.process.kill()
            self.process.wait()


def predict_wall(model: Path, source: Path, rule: str, condition: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="rasid-bench-threads-")) / "out.jsonl"
    command = rasid_command(
        rule, condition, "predict", "--model", str(model), "--input", str(source), "--output", str(out)
    )
    started = time.perf_counter()
    subprocess.run(
        command, cwd=REPO, env=rasid_env(rule), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def predict_speed(model: Path, one: Path, many: Path, rows: int, rule: str, condition: str) -> float:
    with BusyTorch(condition == "beside busy torch"):
        base = predict_wall(model, one, rule, condition)
        wall = predict_wall(model, many, rule, condition)
    return (rows - 1) / max(wall - base, 1e-6)


async def load(port: int, bodies: list[dict], clients: int, seconds: float) -> dict:
    """`clients` concurrent clients posting one paragraph each to /v1/classify for `seconds` after a warm-up;
    a request still in flight at the end is waited for and counted (so a server slower than `seconds` per
    request still gets a speed)."""
    import httpx

    from benchmarks.common import percentile

    latencies, errors = [], 0

    async def client(http, deadline: float, offset: int):
        nonlocal errors
        k = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await http.post(f"http://127.0.0.1:{port}/v1/classify", json=bodies[k % len(bodies)])
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            k += clients

    async with httpx.AsyncClient(timeout=600.0, limits=httpx.Limits(max_connections=clients)) as http:
        for body in bodies[:3]:  # warm-up, not timed
            await http.post(f"http://127.0.0.1:{port}/v1/classify", json=body)
        started = time.perf_counter()
        await asyncio.gather(*(client(http, started + seconds, n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "paragraphs_s": len(latencies) / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "ok": len(latencies),
        "errors": errors,
    }


def serve_speed(model: Path, bodies: list[dict], seconds: float, rule: str, condition: str) -> dict:
    port = free_port()
    command = rasid_command(rule, condition, "serve", "--model", str(model), "--port", str(port))
    with BusyTorch(condition == "beside busy torch"):
        process, _ = start_server(command, port, env={"OMP_WAIT_POLICY": ""} if rule == "old" else None)
        try:
            return asyncio.run(load(port, bodies, clients=4, seconds=seconds))
        finally:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="bundle (default: build the tiny test bundle)")
    parser.add_argument("--data", type=Path, help="rasid JSONL to take texts from (default: the test samples)")
    parser.add_argument("--rows", type=int, default=500, help="rows per predict run")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per serve measurement")
    parser.add_argument("--no-serve", dest="serve", action="store_false", help="measure predict only")
    parser.add_argument("--no-predict", dest="predict", action="store_false", help="measure serve only")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated subset of: rule, old")
    args = parser.parse_args()

    # start_server passes os.environ on to the server: rid it of thread settings once, here
    for key in [k for k in os.environ if k == "RASID_THREADS" or k.startswith(("OMP_", "MKL_"))]:
        del os.environ[key]
    rules = args.rules.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="rasid-bench-threads-"))
    model = args.model or build_tiny_bundle(scratch)
    one = sample_input(scratch / "one.jsonl", 1, args.data)
    many = sample_input(scratch / "many.jsonl", args.rows, args.data)
    print(
        f"bundle {model}; {args.rows} rows; os.cpu_count() = {os.cpu_count()}, "
        f"affinity {len(os.sched_getaffinity(0))} CPUs",
        flush=True,
    )

    speeds = {}
    for condition in CONDITIONS if args.predict else ():
        for rule in rules:
            speeds[("predict", rule, condition)] = predict_speed(model, one, many, args.rows, rule, condition)
            print(f"predict {rule:4} {condition:18} {speeds[('predict', rule, condition)]:8.1f} rows/s", flush=True)
    if args.serve:
        bodies = [{"text": json.loads(line)["text"]} for line in many.read_text(encoding="utf-8").splitlines()[:200]]
        for condition in CONDITIONS:
            for rule in rules:
                result = serve_speed(model, bodies, args.seconds, rule, condition)
                speeds[("serve", rule, condition)] = result["paragraphs_s"]
                speeds[("serve p50", rule, condition)] = result["p50_ms"]
                print(
                    f"serve   {rule:4} {condition:18} {result['paragraphs_s']:8.1f} req/s, p50 "
                    f"{result['p50_ms']:.1f} ms, {result['ok']} answered, {result['errors']} errors",
                    flush=True,
                )

    measured = [what for what, wanted in (("predict", args.predict), ("serve", args.serve)) if wanted]
    rows = []
    for what in measured:
        unit = "rows/s" if what == "predict" else "req/s"
        for rule in rules:
            alone = speeds[(what, rule, "alone")]
            for condition in CONDITIONS:
                speed = speeds[(what, rule, condition)]
                p50 = speeds.get(("serve p50", rule, condition))
                rows.append(
                    [
                        what,
                        rule,
                        condition,
                        f"{speed:.1f} {unit}",
                        "" if p50 is None else f"{p50:.1f}",
                        f"{alone / speed:.2f}x",
                    ]
                )
    print()
    print(table(["command", "threads", "condition", "speed", "p50 ms", "slowdown vs alone"], rows))
    for what in measured:
        if set(RULES) <= set(rules):
            beside = speeds[(what, "old", "beside busy torch")], speeds[(what, "rule", "beside busy torch")]
            print(f"{what} beside busy torch: the rule is {beside[1] / beside[0]:.2f}x the old default's speed")


if __name__ == "__main__":
    main()

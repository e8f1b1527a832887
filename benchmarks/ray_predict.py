"""Ray benchmark: paragraphs/s of `rasid predict` in one process vs `--engine ray --workers N` on this machine,
on the same file, and how often their labels agree.

    python benchmarks/ray_predict.py [--model BUNDLE] [--data FILE.jsonl] [--rows 3000] [--workers 2]

Both run as the command a user would type (a fresh process each; Ray starts its own local cluster), with
RASID_THREADS and OMP_* removed from the environment so that serving/threads.py decides: one process with a
thread per CPU, against N one-CPU-share actors. Each is run twice, on 1 row and on --rows rows: the table gives
the wall time of both and the steady speed (rows - 1) / (wall difference), which leaves out start-up (Ray's
cluster and actors, the model load); end-to-end rows/s is rows / wall. Agreement compares every task's
label, row by row (by id), and the largest score difference. With no --model the tiny test bundle is built
into a temporary folder (see benchmarks/threads.py): its speeds are mostly overhead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.common import RASID, table  # noqa: E402
from benchmarks.threads import build_tiny_bundle, clean_env, sample_input  # noqa: E402


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def read_output(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    return pq.read_table(files).to_pylist()


def agreement(local: list[dict], ray: list[dict]) -> tuple[int, int, float]:
    """(labels equal, labels compared, largest score difference), matching rows by id."""
    by_id = {row["id"]: row for row in ray}
    same = compared = 0
    worst = 0.0
    for row in local:
        other = by_id[row["id"]]
        for key in row:
            if key.endswith(".label") and row[key] is not None:
                compared += 1
                same += row[key] == other[key]
                score = key[: -len(".label")] + ".score"
                worst = max(worst, abs(row[score] - other[score]))
    return same, compared, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="bundle (default: build the tiny test bundle)")
    parser.add_argument("--data", type=Path, help="rasid JSONL to take texts from (default: the test samples)")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="rasid-bench-ray-"))
    model = args.model or build_tiny_bundle(scratch)
    inputs = {
        1: sample_input(scratch / "one.jsonl", 1, args.data),
        args.rows: sample_input(scratch / "many.jsonl", args.rows, args.data),
    }
    print(
        f"bundle {model}; {args.rows} rows; {len(os.sched_getaffinity(0))} CPUs; Ray workers {args.workers}", flush=True
    )
    engines = {
        "single process": lambda source, out: [
            *RASID,
            "predict",
            "--model",
            str(model),
            "--input",
            str(source),
            "--output",
            str(out / "out.parquet"),
        ],
        f"ray, {args.workers} workers": lambda source, out: [
            *RASID,
            "predict",
            "--model",
            str(model),
            "--input",
            str(source),
            "--output",
            str(out / "shards"),
            "--engine",
            "ray",
            "--workers",
            str(args.workers),
        ],
    }
    walls, outputs = {}, {}
    for name, command in engines.items():
        for rows, source in inputs.items():
            out = Path(tempfile.mkdtemp(dir=scratch))
            walls[(name, rows)] = wall(command(source, out))
            outputs[(name, rows)] = out
            print(f"{name}: {rows} row(s) in {walls[(name, rows)]:.1f} s", flush=True)

    lines, speeds = [], {}
    for name in engines:
        one, many = walls[(name, 1)], walls[(name, args.rows)]
        speeds[name] = (args.rows - 1) / max(many - one, 1e-6)
        lines.append([name, f"{one:.1f}", f"{many:.1f}", f"{args.rows / many:.1f}", f"{speeds[name]:.1f}"])
    print()
    print(table(["engine", "1 row, s", f"{args.rows} rows, s", "end-to-end rows/s", "steady rows/s"], lines))
    single, ray = list(engines)
    print(
        f"ray / single process: steady {speeds[ray] / speeds[single]:.2f}x, end-to-end "
        f"{walls[(single, args.rows)] / walls[(ray, args.rows)]:.2f}x"
    )
    local_rows = read_output(outputs[(single, args.rows)] / "out.parquet")
    ray_rows = read_output(outputs[(ray, args.rows)] / "shards")
    same, compared, worst = agreement(local_rows, ray_rows)
    print(
        f"labels: {same} of {compared} agree ({100 * same / max(compared, 1):.2f}%), rows {len(local_rows)} vs "
        f"{len(ray_rows)}, largest score difference {worst:.2e}"
    )


if __name__ == "__main__":
    main()

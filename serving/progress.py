"""A long `rasid predict` run that survives interruption: the progress record beside its output (what the
output depends on, and how many rows are safely written), `--resume`, and stopping cleanly on a signal."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
from pathlib import Path

from serving.errors import RasidError
from serving.files import file_sha256, write_text
from serving.output_files import Start

log = logging.getLogger(__name__)

PROGRESS_SUFFIX = ".rasid-progress.json"
# Options that change no output row: a --resume may differ in them (a bigger batch, more threads, a moved bundle
# whose contents are the same). Every other option is recorded and must match, including options added later.
NEUTRAL_OPTIONS = {
    "model",
    "input",
    "output",
    "resume",
    "threads",
    "batch_size",
    "verbose",
    "func",
    "command",
    "engine",
    "address",
    "workers",
}


class StopRequest:
    """SIGTERM and SIGINT ask the run to stop after the chunk in hand; a second one stops at once (the rows
    written so far stay a valid, resumable prefix either way). Handlers are installed only in the main thread,
    where Python delivers signals, and the previous ones come back on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning(
            "%s: finishing the rows in hand, then stopping (send it again to stop at once)", signal.Signals(signum).name
        )

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def identity(files: list[Path], args) -> dict:
    """What the output depends on: each input's size and hash, the bundle's identity, the options."""
    return {
        "inputs": [{"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files],
        "bundle": {"path": str(Path(args.model).resolve()), "sha256": bundle_hash(args.model)},
        "options": _options(args),
    }


def bundle_hash(folder: Path) -> str:
    """The manifest (tasks, labels, normalisation, calibration, the fast path's measurements) and the heads:
    a retrained or re-checked bundle differs in them, and both are small enough to hash every time."""
    from serving.bundle import HEADS_FILE, MANIFEST_FILE

    digest = hashlib.sha256()
    for name in (MANIFEST_FILE, HEADS_FILE):
        digest.update(file_sha256(Path(folder) / name).encode())
    return digest.hexdigest()


def _options(args) -> dict:
    options = {}
    for key, value in sorted(vars(args).items()):
        if key in NEUTRAL_OPTIONS or callable(value):
            continue
        options[key] = value if value is None or isinstance(value, (bool, int, float, str, list)) else str(value)
    return options


class Progress:
    """The progress record beside the output, written atomically after every chunk."""

    def __init__(self, output: Path, fmt: str, identity: dict, total: int):
        self.output, self.fmt, self.identity, self.total = Path(output), fmt, identity, total
        self.path = self.output.with_name(self.output.name + PROGRESS_SUFFIX)

    def fresh(self) -> Start:
        if self.path.exists():
            log.info("starting over: %s held an interrupted run (pass --resume to continue it instead)", self.output)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.save(0, None)
        return Start()

    def resume_point(self) -> Start:
        if not self.path.is_file():
            if self.output.exists():
                raise RasidError(
                    f"cannot resume {self.output}: it has no progress record ({self.path.name}), so it is "
                    f"complete or was not written by rasid predict. Run without --resume to write it again."
                )
            log.info("nothing to resume at %s: starting", self.output)
            return self.fresh()
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            rows, size, fmt = int(record["rows"]), record["bytes"], record["format"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RasidError(
                f"cannot resume {self.output}: its progress record {self.path} is unreadable ({error}). "
                f"Run without --resume to start over."
            ) from error
        self._check_same(record, fmt)
        log.info("resuming %s after row %d of %d", self.output, rows, self.total)
        return Start(rows, size)

    def _check_same(self, record: dict, fmt: str) -> None:
        start_over = "Run without --resume to start over."
        where = f"cannot resume {self.output}"
        if fmt != self.fmt:
            raise RasidError(f"{where}: it was being written as {fmt}, not {self.fmt}. {start_over}")
        old, new = record.get("inputs", []), self.identity["inputs"]
        if len(old) != len(new):
            raise RasidError(
                f"{where}: the run read {len(old)} input file(s) ({', '.join(i['path'] for i in old)}); "
                f"these inputs are {len(new)} ({', '.join(i['path'] for i in new)}). {start_over}"
            )
        for was, now in zip(old, new):
            if (was["bytes"], was["sha256"]) != (now["bytes"], now["sha256"]):
                raise RasidError(
                    f"{where}: input {now['path']} is not the file the run started with ({was['path']}, "
                    f"{was['bytes']:,} bytes): its contents changed. {start_over}"
                )
        if record.get("bundle", {}).get("sha256") != self.identity["bundle"]["sha256"]:
            raise RasidError(
                f"{where}: the bundle {self.identity['bundle']['path']} is not the one the run started "
                f"with ({record.get('bundle', {}).get('path')}): its manifest or heads differ. {start_over}"
            )
        was, now = record.get("options", {}), self.identity["options"]
        for key in sorted(set(was) | set(now)):
            # an option added to rasid since the run started counts as unset there
            if was.get(key) != now.get(key) and (was.get(key) or now.get(key)):
                raise RasidError(
                    f"{where}: --{key.replace('_', '-')} was {was.get(key)!r} when the run started and is "
                    f"{now.get(key)!r} now. {start_over}"
                )

    def save(self, rows: int, size: int | None) -> None:
        record = {"rows": rows, "bytes": size, "total": self.total, "format": self.fmt, **self.identity}
        write_text(self.path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)

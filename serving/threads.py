"""How many threads torch may use: the CPUs this process may really run on, decided in one place.

torch starts one OpenMP thread per core of the machine, whatever the process may use. Beside another busy
process, or in a container whose CPU quota is smaller than the machine, those threads wait for each other
at every parallel region while the scheduler has put one of them to sleep, and a job runs many times slower
than its share of the CPU. So every rasid command (train, predict, evaluate, serve) calls `configure()`
before torch does any work: the thread count comes from `--threads`, else `RASID_THREADS`, else the CPUs
this process may use (its affinity mask and its cgroup CPU quota, whichever is smaller), and OpenMP is told
to sleep instead of spinning while it waits (OMP_WAIT_POLICY=PASSIVE), so a descheduled team costs nothing.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VARIABLE = "RASID_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    source: str  # "--threads", "RASID_THREADS", "cgroup CPU quota" or "CPU affinity"
    affinity_cpus: int
    quota_cpus: float | None  # None: no quota set

    def as_dict(self) -> dict:
        return asdict(self)


_chosen: ThreadChoice | None = None


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on (taskset, cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def quota_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup CPU quota in CPUs (e.g. 1.5), or None when there is none (v2 `cpu.max`, v1 `cpu.cfs_*`)."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period or 100_000)
        quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text())
            return None if quota <= 0 else quota / int(period_file.read_text())
    except (OSError, ValueError):  # unreadable or odd: no quota we can rely on
        return None
    return None


def choose(requested: int | None = None, environ: dict | None = None, root: Path = CGROUP_ROOT) -> ThreadChoice:
    """The thread count and why: an explicit request, then the environment, then the CPUs available."""
    environ = os.environ if environ is None else environ
    cpus, quota = affinity_cpus(), quota_cpus(root)
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return ThreadChoice(requested, "--threads", cpus, quota)
    value = environ.get(ENV_VARIABLE, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV_VARIABLE} must be a whole number of at least 1, got {value!r}")
        return ThreadChoice(int(value), ENV_VARIABLE, cpus, quota)
    # torchrun starts LOCAL_WORLD_SIZE processes on this machine: each gets its share of the CPUs
    local = environ.get("LOCAL_WORLD_SIZE", "")
    processes = int(local) if local.isdigit() and int(local) > 0 else 1
    usable = min(cpus, math.ceil(quota)) if quota is not None else cpus
    if processes > 1:
        return ThreadChoice(max(1, usable // processes), f"CPUs shared by {processes} torchrun processes", cpus, quota)
    if quota is not None and math.ceil(quota) < cpus:
        return ThreadChoice(max(1, math.ceil(quota)), "cgroup CPU quota", cpus, quota)
    return ThreadChoice(max(1, cpus), "CPU affinity", cpus, quota)


def configure(requested: int | None = None) -> ThreadChoice:
    """Decide once per process and apply it to torch (and to OpenMP, if torch is not loaded yet)."""
    global _chosen
    choice = choose(requested)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(choice.threads)
    else:  # read when OpenMP starts, i.e. when torch is first imported: no need to import it here
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ["OMP_NUM_THREADS"] = str(choice.threads)
        os.environ["MKL_NUM_THREADS"] = str(choice.threads)
    _chosen = choice
    log.info(
        "torch threads: %d (%s; %d CPUs in the affinity mask, CPU quota %s)",
        choice.threads,
        choice.source,
        choice.affinity_cpus,
        "none" if choice.quota_cpus is None else f"{choice.quota_cpus:g}",
    )
    return choice


def chosen() -> ThreadChoice | None:
    """What configure() decided in this process (None if it was never called, e.g. in a notebook)."""
    return _chosen

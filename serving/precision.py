"""The arithmetic a bundle runs at: the one list of precisions, and how "auto" (the bundle's fast path) is chosen.

Torch-free, so the command-line parsers and the service settings can offer the same list without loading torch.
  auto  the bundle's fast path: per-row int8 (serving/encoder.py) where the bundle's own validation data showed
        it costing at most MAX_INT8_COST macro-F1 points on every task (`rasid train` measures it; `rasid
        check-int8` does for older bundles) and the CPU has fast int8 instructions, else fp32. Per bundle,
        because the cost differs between bundles (benchmarks/fast_path_accuracy.py).
  fp32  exactly the trained model (`--no-fast` and RASID_FAST=false are aliases of it).
  int8  per-row int8 whatever its measured cost.
  bf16  bf16 weights; fp32 on a CPU without bf16 instructions. Never the fast path: on CPUs without AMX it
        measured slower than fp32 (benchmarks/precision_speed.py).
"""

from __future__ import annotations

from serving.errors import RasidError

PRECISIONS = ("auto", "fp32", "int8", "bf16")
MAX_INT8_COST = 0.5  # macro-F1 points per task


# torch's CPU capabilities whose int8 matrix product is fast; on AVX2 alone torch._int_mm falls back to a slow
# loop, far slower than fp32 (docs/performance.md), so int8 is never the fast path there.
FAST_INT8_CPUS = ("AVX512", "AMX")


def int8_is_fast() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability().startswith(FAST_INT8_CPUS)


def fast_precision(manifest) -> str:
    """int8 where this bundle's own measurement (macro-F1 points per task that per-row int8 lost against fp32,
    recorded in its manifest) showed it within MAX_INT8_COST on every task and this CPU runs int8 fast, else
    fp32."""
    if not int8_is_fast():
        return "fp32"
    costs = (manifest.metrics.get("int8_cost") or {}).get("macro_f1_points") if manifest is not None else None
    if not costs or set(costs) != {t.name for t in manifest.tasks}:  # a task never measured: no evidence
        return "fp32"
    return "int8" if max(costs.values()) <= MAX_INT8_COST else "fp32"


def resolve_precision(precision: str = "auto", manifest=None) -> str:
    """The precision a Predictor runs at: "auto" becomes the bundle's fast path; bf16 falls back to fp32 on CPUs
    without bf16 instructions (emulated, slower)."""
    if precision not in PRECISIONS:
        raise RasidError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "auto":
        precision = fast_precision(manifest)
    if precision == "bf16":
        import torch

        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            precision = "fp32"
    return precision

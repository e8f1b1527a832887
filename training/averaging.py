"""`--average-last X`: the trained weights are the mean of the weights after each of the last X share of steps.

Averaging the points a run passes through near its end (stochastic weight averaging: Izmailov et al.,
"Averaging weights leads to wider optima and better generalization", 2018; checkpoint averaging in machine
translation) lands in a flatter region than any one of them, for no extra forward pass at serving time. The
mean replaces the weights just before the last evaluation, so the best-epoch rule compares it with the earlier
epochs like any other. It is written beside each checkpoint, so a resumed run continues the same mean.
"""

from __future__ import annotations

import math
from pathlib import Path

from transformers import TrainerCallback

AVERAGE_FILE = "average.pt"  # in the run folder, rewritten at each checkpoint


class AverageLastSteps(TrainerCallback):
    def __init__(self, model, share: float, run_dir: Path):
        self.parameters = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.share = share
        self.path = Path(run_dir) / AVERAGE_FILE
        self.mean: dict | None = None
        self.count = 0
        self.start = 0

    def on_train_begin(self, args, state, control, **kwargs):
        import torch

        self.start = math.floor(state.max_steps * (1 - self.share))  # steps after this one are averaged
        if self.path.is_file():  # the run folder is cleared on a fresh start: this is a resumed run
            saved = torch.load(self.path)
            self.mean, self.count = saved["mean"], saved["count"]

    def on_step_end(self, args, state, control, **kwargs):
        import torch

        if state.global_step <= self.start:
            return
        with torch.no_grad():
            if self.mean is None:
                self.mean = {name: p.detach().clone() for name, p in self.parameters.items()}
                self.count = 1
                return
            self.count += 1
            for name, p in self.parameters.items():
                self.mean[name].add_(p.detach() - self.mean[name], alpha=1 / self.count)

    def on_save(self, args, state, control, **kwargs):
        import torch

        if self.mean is not None and state.is_world_process_zero:
            torch.save({"mean": self.mean, "count": self.count, "step": state.global_step}, self.path)

    def on_epoch_end(self, args, state, control, **kwargs):
        import torch

        if state.global_step >= state.max_steps and self.mean is not None:
            with torch.no_grad():
                for name, p in self.parameters.items():
                    p.copy_(self.mean[name])

"""One training run, step by step (see training/train.py for the recipe and its options)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from serving.bundle import Manifest, load_heads, read_manifest, save_bundle, target_inventory
from serving.data_files import read_rows
from serving.errors import DataError, RasidError
from serving.files import file_sha256
from serving.normalize import NormalizationSettings
from training.calibration import cross_fitted_calibration
from training.config import TrainConfig
from training.continued import carry_over, check_paths, continued_specs, merged_targets
from training.data import split_rows
from training.features import (
    Collator,
    build_examples,
    check_known_labels,
    loss_weights,
    repeat_examples,
    task_specs,
    tokenize_examples,
)
from training.layers import freeze_lowest_layers, keep_lowest_layers, layer_rate_scales, reinit_top_layers
from training.metrics import classification_metrics

log = logging.getLogger(__name__)
RUN_FILE = "run.json"  # in the run folder: config and data hashes, so --resume refuses a changed run


def load_encoder(base: str):
    """The base's tokenizer and its encoder: a BERT on serving.encoder's padding-free layers (the same function,
    and faster to train: benchmarks/train_speed.py), any other architecture as transformers loads it."""
    from transformers import AutoModel, AutoTokenizer

    from serving.encoder import trainable_encoder

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        try:  # BERT-like encoders carry a pooler we never use; not loading it avoids unused weights
            encoder = AutoModel.from_pretrained(base, add_pooling_layer=False)
        except TypeError:
            encoder = AutoModel.from_pretrained(base)
    except OSError as error:
        raise RasidError(f"cannot load the base encoder '{base}': {error}".rstrip(".") + ".") from error
    return trainable_encoder(encoder) or encoder, tokenizer


class TrainingRun:
    def __init__(self, config: TrainConfig, callbacks: list):
        self.config = config
        self.callbacks = callbacks

    def execute(self) -> Path:
        c = self.config
        quiet_libraries()
        # 1. data and tasks
        read = read_rows(c.data, skip_bad_rows=c.skip_bad_rows, tasks=c.tasks)
        rows = [row for row in read.rows if row.labels]
        tasks = tasks_in(rows, c.tasks)
        rows_per_file = Counter(row.file for row in rows)
        earlier = self._earlier_bundle()
        # a continued bundle is validated on all its tasks: the encoder moves under each of them
        val_tasks = [*tasks, *(t.name for t in earlier.tasks if t.name not in tasks)] if earlier else tasks
        # 2. validation split
        if c.val_data:
            val_read = read_rows(c.val_data, c.skip_bad_rows, val_tasks)
            train_rows, val_rows = rows, [r for r in val_read.rows if r.labels]
        else:
            train_rows, val_rows = split_rows(rows, c.val_fraction, c.seed)
        if not val_rows:
            raise RasidError("the validation split is empty: give more data, a larger --val-fraction, or --val-data.")
        specs = task_specs(train_rows, tasks, set(c.pair_tasks))
        trained = {spec.name for spec in specs}
        if earlier is not None:
            specs = continued_specs(earlier, specs)
        check_known_labels(val_rows, specs, "the validation data")
        log.info(
            "%d training rows, %d validation rows; tasks: %s",
            len(train_rows),
            len(val_rows),
            ", ".join(f"{s.name} ({s.input}, {len(s.labels)} labels)" for s in specs),
        )
        # 3. base encoder
        base = c.base if earlier is None else str(c.init_from)
        if base is None:
            from training.e5.base_folder import ensure_base

            base = str(ensure_base(corpus_fallback=[*c.data, *c.val_data]))
        encoder, tokenizer = load_encoder(base)
        # before the run folder is cleared: a request the base cannot meet must not cost earlier checkpoints
        if c.keep_layers:
            keep_lowest_layers(encoder, c.keep_layers)
        if c.reinit_layers:
            reinit_top_layers(encoder, c.reinit_layers, seed=c.seed, frozen=c.freeze_layers)
        if c.freeze_embeddings:
            encoder.get_input_embeddings().weight.requires_grad_(False)
        if c.freeze_layers:
            freeze_lowest_layers(encoder, c.freeze_layers)
        rate_scales = layer_rate_scales(encoder, c.layer_lr_decay) if c.layer_lr_decay < 1 else None
        # 4. examples
        settings = NormalizationSettings()
        train_columns = build_examples(train_rows, specs, settings)
        val_columns = build_examples(val_rows, specs, settings)
        for flag, named in (("--task-class-weight-power", c.task_class_weight_power), ("--task-repeat", c.task_repeat)):
            unknown = sorted(set(named) - {spec.name for spec in specs})
            if unknown:
                raise RasidError(f"{flag} names tasks this run does not train: {', '.join(unknown)}.")
        weigh = loss_weights(train_columns, specs, c.class_weight_power, c.balance_by_target, c.task_class_weight_power)
        train_columns["weight"], val_columns["weight"] = weigh(train_columns), weigh(val_columns)
        if c.task_repeat:
            before = len(train_columns["labels"])
            train_columns = repeat_examples(train_columns, specs, c.task_repeat, c.seed)
            log.info(
                "sampling by task (%s): %d -> %d training examples", c.task_repeat, before, len(train_columns["labels"])
            )
        train_set = tokenize_examples(train_columns, tokenizer, c.max_length)
        val_set = tokenize_examples(val_columns, tokenizer, c.max_length)
        # 5. train
        data = describe_data(c.data, rows_per_file)
        self._prepare_run_dir(data)
        trainer = self._trainer(encoder, tokenizer, specs, train_set, val_set, rate_scales)
        if earlier is not None:
            load_heads(trainer.model, c.init_from, earlier.tasks)
        trainer.train(resume_from_checkpoint=True if c.resume else None)
        # 6. best epoch, calibration (every process takes part: evaluation gathers across processes)
        from training.hf_trainer import BEST_DIR, best_answers, load_best, split_by_task

        trainer.accelerator.wait_for_everyone()  # rank 0 may still be writing the best weights
        if not (c.run_dir / BEST_DIR).is_dir():  # stopped before the first epoch ended (--max-steps)
            trainer.evaluate()
        best = load_best(trainer.model, c.run_dir)
        # the best epoch's own validation answers; several processes all predict again (it gathers across them)
        answers = best_answers(c.run_dir, val_set["labels"], val_set["task_ids"])
        if answers is None or trainer.args.world_size > 1:
            prediction = trainer.predict(val_set)
            answers = (prediction.predictions, *prediction.label_ids)
        metrics, calibrated = {}, {}
        for spec, logits, gold in split_by_task(*answers, specs):
            # the temperature is fitted on all validation rows; ECE after it is measured cross-fitted
            calibration = cross_fitted_calibration(logits, gold, seed=c.seed)
            temperature = calibration["temperature"]
            names = list(spec.labels)
            scores = classification_metrics([names[g] for g in gold], [names[p] for p in logits.argmax(1)], names)
            scores["ece_before_calibration"] = calibration["ece_before"]
            scores["ece"] = calibration["ece_after"]
            metrics[spec.name] = {**scores, "temperature": temperature, "calibration": calibration}
            calibrated[spec.name] = type(spec)(spec.name, spec.labels, spec.input, temperature)
            log.info(
                "validation %s: n=%d accuracy %.4f macro-F1 %.4f ECE %.4f -> %s held out (T=%.2f)",
                spec.name,
                scores["n"],
                scores["accuracy"],
                scores["macro_f1"],
                scores["ece_before_calibration"],
                "-" if scores["ece"] is None else f"{scores['ece']:.4f}",
                temperature,
            )
            if scores["ece"] is not None and scores["ece"] > scores["ece_before_calibration"]:
                log.warning(
                    "task '%s': the fitted temperature raised ECE on held-out validation rows (%.4f -> "
                    "%.4f); rasid.json keeps both (metrics.validation.%s.calibration)",
                    spec.name,
                    scores["ece_before_calibration"],
                    scores["ece"],
                    spec.name,
                )
        if not trainer.is_world_process_zero():
            return c.out
        # 7. bundle
        # a task without validation rows keeps its earlier temperature (1 for a new head)
        inventory = target_inventory(train_rows, [s for s in specs if s.name in trained], settings)
        manifest = Manifest(
            tasks=[calibrated.get(spec.name, spec) for spec in specs],
            max_length=c.max_length,
            base_model=base if earlier is None else earlier.base_model,
            normalization=settings,
            pooling=c.pooling,
            training={
                **c.to_dict(),
                "best_epoch": best.get("epoch"),
                "best_step": best.get("step"),
                "train_rows": len(train_rows),
                "val_rows": len(val_rows),
            },
            data=data,
            metrics={"validation": metrics, **self._earlier_metrics(earlier, trained)},
            targets=inventory if earlier is None else merged_targets(earlier.targets, inventory),
        )
        save_bundle(c.out, trainer.model, tokenizer, manifest)
        if earlier is not None:
            carry_over(c.init_from, c.out, trained)
        log.info("bundle written to %s", c.out)
        self._check_int8(encoder, val_rows)
        # 8. late fusion with n-gram models
        if c.fusion:
            from training.fusion import fit_fusion

            fit_fusion(c.out, train_rows, val_rows, seed=c.seed, tasks=None if earlier is None else sorted(trained))
        return c.out

    def _earlier_bundle(self) -> Manifest | None:
        c = self.config
        if c.init_from is None:
            return None
        check_paths(c.init_from, c.out, c.base)
        return read_manifest(c.init_from)

    @staticmethod
    def _earlier_metrics(earlier: Manifest | None, trained: set[str]) -> dict:
        """What the earlier bundle measured: its validation before this run, its fusion of untrained tasks."""
        if earlier is None:
            return {}
        fusion = {t: v for t, v in earlier.metrics.get("fusion", {}).items() if t not in trained}
        return {"before_init_from": earlier.metrics.get("validation", {}), **({"fusion": fusion} if fusion else {})}

    def _check_int8(self, encoder, val_rows) -> None:
        """Record what per-row int8 costs this bundle on its validation rows: it decides the fast path.
        Only serving.encoder's BERTs have per-row int8; a failure here leaves the bundle on fp32, not lost."""
        from serving.encoder import BertEncoder
        from serving.precision import int8_is_fast
        from training.int8_cost import record_int8_cost

        c = self.config
        if not c.int8_check or not isinstance(encoder, BertEncoder):
            return
        if not int8_is_fast():  # its fast path would be fp32 anyway, and int8 would take long to measure here
            log.info("int8 cost not measured: this CPU has no fast int8; `rasid check-int8` can on one that has")
            return
        data = [str(p) for p in c.val_data] or [f"validation split ({c.val_fraction:g} of the data)"]
        try:
            record_int8_cost(c.out, val_rows, data, skip_bad_rows=True)
        except Exception as error:  # noqa: BLE001  (e.g. a CPU without int8 kernels: the bundle is written already)
            log.warning("int8 cost not measured (%s); the fast path stays fp32 (`rasid check-int8` can retry)", error)

    def _prepare_run_dir(self, data: list[dict]) -> None:
        c = self.config
        identity = {
            "config": {
                k: v for k, v in c.to_dict().items() if k not in {"resume", "skip_bad_rows", "int8_check", "fusion"}
            },  # none changes the weights
            "data": [d["sha256"] for d in data],
            "val_data": [file_sha256(p) for p in c.val_data],  # the best epoch is chosen on them
        }
        run_file = c.run_dir / RUN_FILE
        if c.resume:
            if not run_file.is_file() or not any(c.run_dir.glob("checkpoint-*")):
                raise RasidError(f"--resume: no checkpoint in {c.run_dir} to continue from; run without --resume.")
            earlier = json.loads(run_file.read_text(encoding="utf-8"))
            # an option added to rasid since that run was started had its default then
            defaults = TrainConfig(data=[Path("x")], out=Path("x")).to_dict()
            earlier["config"] = {k: earlier["config"].get(k, defaults.get(k)) for k in identity["config"]}
            earlier.setdefault("val_data", identity["val_data"])  # not recorded by a rasid from before 2026-12
            if earlier != identity:
                changed = sorted(k for k in identity["config"] if identity["config"][k] != earlier["config"].get(k))
                what = (
                    "the data files changed"
                    if earlier["data"] != identity["data"]
                    else "the validation files changed"
                    if earlier["val_data"] != identity["val_data"]
                    else f"options changed: {changed}"
                )
                raise RasidError(f"--resume: {what} since the interrupted run; rerun without --resume to start over.")
            log.info("resuming the run in %s", c.run_dir)
        else:
            clear_run_dir(c.run_dir)
            write_json(run_file, identity)

    def _trainer(self, encoder, tokenizer, specs, train_set, val_set, rate_scales: dict[int, float] | None):
        import torch

        from serving.model import MultiTaskModel
        from training.averaging import AverageLastSteps
        from training.hf_trainer import KeepBestEpoch, MultiTaskTrainer, metrics_function, training_arguments

        c = self.config
        torch.manual_seed(c.seed)  # the heads' initial weights
        model = MultiTaskModel(encoder, {s.name: len(s.labels) for s in specs}, pooling=c.pooling)
        on_cpu = not torch.cuda.is_available()
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # started by torchrun / accelerate launch
        args = training_arguments(
            c.run_dir,
            c.epochs,
            c.batch_size,
            c.lr,
            c.save_steps,
            c.seed,
            max_steps=c.max_steps,
            per_device_eval_batch_size=64,
            eval_strategy="epoch",
            bf16=c.bf16,
            label_names=["labels", "task_ids"],
            ddp_backend="gloo" if on_cpu and distributed else None,
            ddp_find_unused_parameters=True,
        )
        trainer_ref: list = []
        averaging = [AverageLastSteps(model, c.average_last, c.run_dir)] if c.average_last else []
        trainer = MultiTaskTrainer(
            model=model,
            args=args,
            data_collator=Collator(tokenizer.pad_token_id),
            train_dataset=train_set,
            eval_dataset=val_set,
            compute_metrics=metrics_function(specs),
            callbacks=[*averaging, KeepBestEpoch(c.run_dir, trainer_ref), *self.callbacks],
            rate_scales=rate_scales,
            rdrop=c.rdrop,
        )
        trainer_ref.append(trainer)
        return trainer


def quiet_libraries() -> None:
    """Keep the Trainer's progress bar (it shows the ETA) but drop the per-file loading and mapping bars."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_warning()


def describe_data(paths: list[Path], rows_per_file: dict[str, int]) -> list[dict]:
    return [{"path": str(p), "sha256": file_sha256(p), "rows": rows_per_file.get(str(p), 0)} for p in paths]


def tasks_in(rows, requested: list[str] | None) -> list[str]:
    present = sorted({task for row in rows for task in row.labels})
    if requested is None:
        if not present:
            raise DataError("no row carries a label: nothing to train.")
        return present
    missing = [t for t in requested if t not in present]
    if missing:
        raise DataError(f"task(s) {missing} have no labels in the data; the data has {present}.")
    return requested


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def clear_run_dir(run_dir: Path) -> None:
    if run_dir.exists():
        log.info("starting over: removing the earlier run in %s (use --resume to continue it)", run_dir)
        shutil.rmtree(run_dir)

"""Training a config: each variant into its own folder, resumable, appearing only when complete.

    <output_dir>/<variant>.partial/       while training (a rerun with the same settings resumes here)
        run.json                         what it is trained for (see run_record)
        checkpoints/checkpoint-N/        atomic Trainer checkpoints (each a loadable encoder), the last two
        training_log.csv
    <output_dir>/<variant>/              written inside the work folder, then renamed into place whole:
        adapter (or weights), tokenizer, l3prune_encoder.json   -> LLMEncoder.from_pretrained(<variant>)
        model_info.json                  layers and parameters before and after pruning
        training_log.csv

The work folder, checkpoints and optimizer states included, is removed once the final folder is in
place. A variant whose final folder exists is skipped.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from ..config import TrainConfig
from ..dataset.utils import load_dataset
from ..elastic import ELASTIC, resolve_depths
from ..encoder import LLMEncoder
from ..encoder.layers import layers_to_keep
from ..encoder.llm_encoder import load_model_config
from ..files import write_json
from ..layerwise.run import find_prune_points
from ..loss.utils import load_loss
from ..precision import encoder_kwargs, resolve_precision
from ..variants import check_variant_name, needs_prune_points, variant_names, variant_value
from .arguments import checkpoints_to_keep, training_arguments
from .callbacks import StepLimitProgress, StopAfterSteps, TrainingLogCSV
from .lora import add_lora
from .run_record import claim_work_folder, run_record, write_record

logger = logging.getLogger(__name__)

FINAL_FILES = ("l3prune_encoder.json", "model_info.json", "training_log.csv")
STAGED_FINAL = ".final"  # the final folder while it is written, inside the work folder


def is_complete(folder: str | os.PathLike) -> bool:
    return all((Path(folder) / name).is_file() for name in FINAL_FILES)


def partial_folder(folder: Path) -> Path:
    return folder.with_name(folder.name + ".partial")


def train(
    config: TrainConfig,
    variant: str | None = None,
    prune_points: Mapping | None = None,
    output_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Train `variant` of `config`, or every variant of it; returns {variant: final folder}.

    With `variant`, `output_dir` is that variant's folder; without, it replaces the config's
    output_dir as the folder that holds one subfolder per variant. L3Prune runs first when
    `small`/`large` are to be trained and no `prune_points` are given.
    """
    names = [check_variant_name(config, variant)] if variant is not None else variant_names(config)
    if variant is not None and output_dir is not None:
        folders = {variant: Path(output_dir)}
    else:
        root = output_dir if output_dir is not None else config.output_dir
        if root is None:
            raise ValueError(f"{config.source}: no output folder: set key 'output_dir' or pass --output-dir")
        folders = {name: Path(root) / name for name in names}
    for folder in folders.values():
        if folder.exists() and any(folder.iterdir()) and not is_complete(folder):
            raise ValueError(
                f"{folder} exists but is not a finished variant (no {', '.join(FINAL_FILES)}); move it away or remove it"
            )
    todo = [name for name in names if not is_complete(folders[name])]
    for name in names:
        if name not in todo:
            logger.info("variant %s: already trained in %s, skipped", name, folders[name])
    if prune_points is None and any(needs_prune_points(config, name) for name in todo):
        prune_points = find_prune_points(config)
    for name in todo:
        train_variant(config, name, variant_value(config, name, prune_points), folders[name], prune_points)
    return folders


def train_variant(
    config: TrainConfig,
    name: str,
    prune: float | int | None,
    folder: str | os.PathLike,
    prune_points: Mapping | None = None,
) -> Path:
    """Train one variant (`prune`: None, a fraction to drop or a layer count to keep) into `folder`,
    resuming from the last checkpoint of an earlier, interrupted run with the same settings."""
    folder = Path(folder)
    work = partial_folder(folder)
    dtype, bf16, fp16 = resolve_precision(config)
    args = training_arguments(config, work / "checkpoints", bf16, fp16)
    layers_before, params_before = full_model_size(config.model_name_or_path, config.trust_remote_code)
    prune, depths = _what_to_prune(config, name, prune, layers_before, prune_points)
    layers = layers_before if prune is None else layers_to_keep(prune, layers_before)
    global_batch = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
    depths_json = None if depths is None else [d.as_json() for d in depths]
    record = run_record(config, name, prune, layers, args.world_size, global_batch, depths_json)
    with args.main_process_first(local=False, desc="checking the work folder"):
        if args.should_save:  # the others wait, then find only checkpoints of these settings
            claim_work_folder(work, record)
    encoder, params_after, trainable, depths_info = _encoder_to_train(config, prune, args, dtype, depths_json)
    logger.info(
        "variant %s: %d of %d layers, %s parameters",
        name,
        encoder.num_layers,
        layers_before,
        f"{params_after:,}",
    )
    trainer = _trainer(config, encoder, args, name, work, depths)
    steps, seconds, resumed_from = _train(trainer, config, name, work, record)
    if args.should_save:
        # inputs were cut to max_seq_length for training only; the saved encoder takes the inference length
        encoder.max_length = config.inference_max_length
        info = dict(
            variant=name,
            base_model=config.model_name_or_path,
            prune=prune,
            layers_before=layers_before,
            layers_after=encoder.num_layers,
            params_before=params_before,
            params_after=params_after,
            trainable_params=trainable,
            steps=steps,
            # wall-clock seconds of the training that ended this run (from resumed_from_step on)
            train_seconds=round(seconds, 3),
            resumed_from_step=resumed_from,
            elastic_depths=depths_info,
            prune_points=None
            if prune_points is None
            else {k: prune_points[k] for k in ("small", "large", "num_layers")},
        )
        _finish(encoder, work, folder, info)
    trainer.accelerator.wait_for_everyone()
    return folder


def _what_to_prune(config: TrainConfig, name: str, prune, layers_before: int, prune_points: Mapping | None):
    """(prune value, elastic depths or None) of a variant, its prune points checked against the
    base model. The elastic variant keeps its deepest depth's layers and trains at every depth."""
    if prune_points is not None and prune_points["num_layers"] != layers_before:
        raise ValueError(
            f"the prune points were computed for a {prune_points['num_layers']}-layer model, "
            f"but {config.model_name_or_path} has {layers_before} layers"
        )
    if name != ELASTIC:
        return prune, None
    depths = resolve_depths(config.elastic_depths, layers_before, prune_points, config.source)
    return (depths[-1].layers if depths[-1].layers < layers_before else None), depths


def _encoder_to_train(config: TrainConfig, prune, args, dtype, depths_json):
    """(encoder, its parameters, the trainable ones, each elastic depth's size or None): the base
    model cut as `prune` says, with a fresh LoRA adapter when the config uses one (seeded, so a
    rerun starts from the same weights); sizes are counted before the adapter is added."""
    from transformers import set_seed

    set_seed(args.seed)  # the adapter's initial weights
    encoder = LLMEncoder.from_pretrained(
        config.model_name_or_path, prune=prune, device_map=args.device, **encoder_kwargs(config, dtype)
    )
    params = encoder.num_parameters()
    depths_info = None if depths_json is None else depth_sizes(encoder, depths_json)
    # a KV cache would keep every layer's keys and values alive in training
    encoder.model.config.use_cache = False
    encoder.trained_depths = depths_json  # saved with every checkpoint and the final folder
    trainable = (
        add_lora(encoder, config.lora_r, config.lora_scaling_alpha, config.lora_dropout)
        if config.use_adapter
        else params
    )
    return encoder, params, trainable, depths_info


def _trainer(config: TrainConfig, encoder: LLMEncoder, args, name: str, work: Path, depths=None):
    """The ContrastiveTrainer of one variant: the config's data and loss (at every elastic depth,
    when `depths` are given), the CSV log, the step limit."""
    from transformers import ProgressCallback

    from .trainer import ContrastiveTrainer

    dataset = load_dataset(
        config.dataset_name,
        file_path=config.dataset_file_path,
        effective_batch_size=args.train_batch_size * args.world_size,  # one global batch = one block
        seed=args.seed,
    )
    if args.world_size > 1:
        logger.info(
            "variant %s: process %d of %d, global batch %d (%d per process)",
            name,
            args.process_index + 1,
            args.world_size,
            args.train_batch_size * args.world_size,
            args.train_batch_size,
        )
    callbacks = [TrainingLogCSV(work / "training_log.csv")]
    if config.stop_after_n_steps is not None:
        callbacks.append(StopAfterSteps(config.stop_after_n_steps))
    loss_fn = load_loss(config.loss_class, scale=config.loss_scale)
    if depths is not None:
        from .elastic import ElasticLoss

        loss_fn = ElasticLoss(loss_fn, [d.weight for d in depths], config.elastic_distillation)
    trainer = ContrastiveTrainer(
        encoder,
        loss_fn,
        args,
        dataset,
        callbacks,
        config.loss_mini_batch_size,
        depths=None if depths is None else [d.layers for d in depths],
        keep_checkpoints=checkpoints_to_keep(config),
    )
    if config.stop_after_n_steps is not None and trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(StepLimitProgress(config.stop_after_n_steps))
    return trainer


def _train(trainer, config: TrainConfig, name: str, work: Path, record: dict) -> tuple[int, float, int]:
    """Train (resuming from the work folder's last checkpoint); returns the steps trained, the
    wall-clock seconds this call trained and the step it resumed from. A run whose last checkpoint
    reached stop_after_n_steps is only finished from it."""
    from .trainer import last_checkpoint, load_checkpoint_weights, remove_incomplete_checkpoints

    args = trainer.args
    if args.should_save:
        remove_incomplete_checkpoints(args.output_dir)
    last = last_checkpoint(args.output_dir)
    last_step = int(last.rsplit("-", 1)[1]) if last else 0
    if last and config.stop_after_n_steps is not None and last_step >= config.stop_after_n_steps:
        logger.info("variant %s: %s reached the step limit; finishing from it", name, last)
        load_checkpoint_weights(trainer.encoder.model, last)
        return last_step, 0.0, last_step
    if last:
        logger.info("variant %s: resuming from %s", name, last)
    try:
        if args.should_save:
            write_record(work, record)
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - started
    except BaseException:
        kept = last_checkpoint(args.output_dir)
        if args.should_save and kept is None:
            # nothing to resume from: leave no folder behind (the main process alone touches the folders)
            shutil.rmtree(work, ignore_errors=True)
        logger.error(
            "variant %s: training stopped at step %d; %s",
            name,
            trainer.state.global_step,
            f"a rerun with the same settings resumes from {kept}" if kept else "no checkpoint to resume from",
        )
        raise
    return trainer.state.global_step, seconds, last_step


def _finish(encoder: LLMEncoder, work: Path, folder: Path, info: dict) -> None:
    """Write the final folder inside the work folder (encoder, training log, model_info.json), rename
    it into place whole, then remove the work folder with its checkpoints."""
    staged = work / STAGED_FINAL
    shutil.rmtree(staged, ignore_errors=True)  # what a run killed while writing it left
    encoder.save(staged)
    # copied, not moved: the work folder stays whole until the rename
    shutil.copy2(work / "training_log.csv", staged / "training_log.csv")
    write_json(staged / "model_info.json", info)
    os.replace(staged, folder)  # onto nothing, or an empty folder made beforehand
    shutil.rmtree(work)
    logger.info("variant %s: trained model in %s", info["variant"], folder)


def depth_sizes(encoder: LLMEncoder, depths: list[dict]) -> list[dict]:
    """Each elastic depth with `params`: the parameters of the model cut there (no adapter)."""
    from ..encoder.layers import decoder_layers

    per_layer = [sum(p.numel() for p in layer.parameters()) for layer in decoder_layers(encoder.model)]
    total = encoder.num_parameters()
    return [depth | {"params": total - sum(per_layer[depth["layers"] :])} for depth in depths]


def full_model_size(name_or_path: str, trust_remote_code: bool = False) -> tuple[int, int]:
    """(layers, parameters) of the unpruned base model, counted without loading its weights."""
    from accelerate import init_empty_weights
    from transformers import AutoModel

    config = load_model_config(name_or_path, trust_remote_code=trust_remote_code)
    with init_empty_weights():
        model = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    return config.num_hidden_layers, sum(p.numel() for p in model.parameters())

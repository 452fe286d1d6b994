"""The SAE training loop, read top to bottom: start → epochs → steps, resumable bit for bit.

Why a loop of its own rather than :class:`aekit.training.Trainer`: an SAE step differs in
every part the Trainer owns: no validation split (the stream is the data; the field judges
an SAE by explained variance, L0 and dead latents on the stream itself), a budget counted in
rows rather than epochs (an iterable may have no length), per-step state the Trainer has no
place for (BatchTopK's running threshold, each latent's rows since it last fired), and the
unit-norm dictionary kept after every step. What it shares it takes from ``training/``: the
checkpoint file format (:func:`~aekit.training.checkpoint.write_checkpoint`, atomic
safetensors, no pickle), checkpoint names, finding the newest one, pruning, and
:class:`~aekit.errors.TrainingDivergedError`.

**Resuming.** A checkpoint holds the weights, Adam's state, BatchTopK's threshold, the
rows-since-fired counters, the step, epoch and batch reached, the order generator's state at
the start of the epoch, the figures summed since the last record, the history, and whether
the dead latents AuxK works on (the loop finds them every 16 steps only: one host
synchronisation per 16 steps instead of one per step, and AuxK's top-k runs over the dead
latents' columns alone, usually few). A resumed
run restores them, replays the epoch's order from the generator and skips the batches done:
on the CPU the weights equal the uninterrupted run's bit for bit.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from ..config.sae import BATCHTOPK_FAMILY, SAEConfig
from ..data.names import refuse_other_columns
from ..errors import ConfigError, ModelFileError, TrainingDivergedError
from ..files import check_fields
from ..model.sae_codes import update_threshold
from ..model.sae_dictionary import SparseDictionary
from ..training.checkpoint import (
    all_finite,
    checkpoint_path,
    find_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from ..training.optim import Adam
from ..training.progress import StopOnSignal
from .objective import STAT_NAMES, step_loss
from .streams import IterableBatches, Source

__all__ = ["SAE_CHECKPOINT_FORMAT", "SAETrainer", "check_sae_state", "geometric_median"]

logger = logging.getLogger("aekit")

SAE_CHECKPOINT_FORMAT = "aekit-sae-checkpoint"
# THE schema of an SAE training state: its keys and their types.
SAE_STATE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "config": dict,
    "n_features": int,
    "module": dict,
    "optimizer": dict,
    "position": dict,
    "epoch_state": torch.Tensor,
    "order_state": torch.Tensor,
    "since_fired": torch.Tensor,
    "sums": torch.Tensor,
    "history": list,
    "elapsed": (int, float),
    "aux_latents": torch.Tensor,
    "column_labels": (list, type(None)),  # the data's column names; absent before 0.2
    "decoder_start": (float, type(None)),  # config.decoder_start(); absent: an older run
}
_AUX_CHECK_EVERY = 16  # steps between two looks for the dead latents (AuxK's)
_RUN_FIELDS = ("checkpoint_dir", "checkpoint_every", "keep_checkpoints", "log_every", "device")


def _scale_of(rows: torch.Tensor) -> float:
    """``normalize``'s input scale: rows times it have a mean squared norm of ``n_features``."""
    mean_sq = rows.pow(2).sum(dim=1).mean().clamp_min(1e-12)
    return math.sqrt(rows.shape[1] / float(mean_sq))


def _written_start(state: dict[str, Any], written: dict[str, Any]) -> float | None:
    """The decoder rows' start (None: unit rows) a checkpoint's run trained with.

    Recorded as ``decoder_start`` since JumpReLU's rows train freely; before, ``"auto"`` meant
    free rows from 1.0 for the BatchTopK family only, and unit rows for a JumpReLU run, which
    resumes with ``decoder_init_norm=None`` (the default now frees its rows too).
    """
    if "decoder_start" in state:
        return state["decoder_start"]
    norm = written.get("decoder_init_norm")
    if norm == "auto":
        return 1.0 if written.get("architecture") in BATCHTOPK_FAMILY else None
    return None if norm is None else float(norm)


def check_sae_state(state: object, source: object) -> dict[str, Any]:
    """Check the keys and types of an SAE training state read from ``source``; return it.

    Raises
    ------
    ModelFileError
        A missing, unknown or mistyped key, or a state of another format.
    """
    optional = ("column_labels", "decoder_start")
    state = check_fields(state, SAE_STATE_FIELDS, str(source), optional=optional)
    if state["format"] != SAE_CHECKPOINT_FORMAT:
        raise ModelFileError(f"{source} is not an SAE checkpoint")
    positions = {"step": int, "epoch": int, "batch": int, "rows": int}
    check_fields(state["position"], positions, f"{source} position")
    return state


def geometric_median(rows: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """The point minimising the summed distances to ``rows`` (Weiszfeld's iterations)."""
    point = rows.mean(dim=0)
    for _ in range(iterations):
        weights = 1.0 / (rows - point).norm(dim=1).clamp_min(1e-8)
        point = (weights[:, None] * rows).sum(dim=0) / weights.sum()
    return point


class SAETrainer:
    """Train a :class:`~aekit.model.sae_dictionary.SparseDictionary` on a batch source.

    Parameters
    ----------
    module : SparseDictionary
        Built from ``config``, on ``device``.
    source : ArrayBatches, BlockBatches or IterableBatches
    device : torch.device

    Attributes
    ----------
    history : list of dict
        One record every ``log_every`` steps and one at the end: ``step``, ``rows``,
        ``epoch``, ``loss``, ``mse`` (squared error per row), ``explained_variance``,
        ``fvu``, ``l0``, ``dead_fraction``, ``shrinkage``, ``aux_loss``, ``sparsity_loss``,
        ``lr``, ``threshold`` (BatchTopK's), ``seconds`` and ``rows_per_s``.
    step, rows_seen : int
    stopped : bool
        True when the run stopped at ``stop_after`` before its budget.
    """

    def __init__(self, module: SparseDictionary, source: Source, device: torch.device) -> None:
        self.module, self.source, self.device = module, source, device
        self.config: SAEConfig = module.config
        # fused: one kernel for all the parameters (on one CPU thread about 4x faster than
        # the per-tensor loop at 1,024 x 256: a tenth of a JumpReLU step)
        self.optimizer = Adam(module.parameters(), lr=self.config.lr, fused=True)
        self.order = torch.Generator().manual_seed(self.config.random_state + 1)
        self.epoch_state = self.order.get_state()
        self.position = {"step": 0, "epoch": 0, "batch": 0, "rows": 0}
        code_dim = self.config.code_dim
        self.since_fired = torch.zeros(code_dim, dtype=torch.int64, device=device)
        self.sums = torch.zeros(len(STAT_NAMES), dtype=torch.float64, device=device)
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.stopped = False
        self._whole = True  # False inside a step: no consistent state to save there
        # the latents dead at the last look (every 16 steps): AuxK's
        self.aux_latents = torch.zeros(0, dtype=torch.int64, device=device)

    # -- the run ------------------------------------------------------------------------
    def start(self, init_generator: torch.Generator) -> None:
        """Initial weights, then ``b_dec`` and the input scale from the first rows."""
        self.module.reset_parameters(init_generator)
        rows = self.source.first_rows(self.order, self.config.init_rows).to(self.device)
        with torch.no_grad():
            if self.config.normalize:
                self.module.input_scale.fill_(_scale_of(rows))
            rows = rows * self.module.input_scale
            start = self.config.b_dec_start()
            if start == "mean":
                self.module.b_dec.copy_(rows.mean(dim=0))
            elif start == "geometric_median":
                self.module.b_dec.copy_(geometric_median(rows))

    def total_steps(self) -> int | None:
        """Steps of the whole run, when known (the schedule needs it to decay)."""
        size = self.config.batch_size
        whole = None  # n_epochs over the data, when its length is known
        if self.source.n_rows is not None:
            whole = self.config.n_epochs * math.ceil(self.source.n_rows / size)
        if self.config.max_rows is None:
            return whole
        budget = math.ceil(self.config.max_rows / size)  # the run ends at the smaller
        return budget if whole is None else min(budget, whole)

    def lr_at(self, step: int) -> float:
        """The learning rate of a step: linear warm-up, constant, linear decay to 0."""
        config, lr = self.config, self.config.lr
        if config.lr_warmup_steps and step < config.lr_warmup_steps:
            lr *= (step + 1) / config.lr_warmup_steps
        total = self.total_steps()
        if config.lr_decay_steps and total is not None:
            left = total - step
            if left < config.lr_decay_steps:
                lr *= max(left, 0) / config.lr_decay_steps
        return lr

    def run(self, stop_after: int | None = None) -> None:
        """Train until the budget (or ``stop_after`` steps in all), recording history.

        With ``checkpoint_dir``, Ctrl-C (or SIGTERM) in the main thread stops at the next
        step boundary, saves that step's checkpoint and raises ``KeyboardInterrupt``; a
        second one interrupts at once (then a checkpoint is saved only where the state is
        whole, between two steps).
        """
        if self.config.lr_decay_steps and self.total_steps() is None:
            raise ConfigError("lr_decay_steps needs a known length: set max_rows for an iterable")
        if self.config.checkpoint_dir is None:
            self._run(stop_after, None)
            return
        stopper = StopOnSignal()
        try:
            with stopper.installed():
                self._run(stop_after, stopper)
        except KeyboardInterrupt:
            self._save_interrupted()
            raise

    def _save_interrupted(self) -> None:
        """Save the state on an interrupt that landed between two steps; else say so."""
        if not self._whole:
            logger.warning(
                "interrupted inside a step, where no consistent state can be saved; "
                "resume continues from the last checkpoint in %s",
                self.config.checkpoint_dir,
            )
            return
        try:
            self.save_checkpoint()
        except TrainingDivergedError as exc:
            logger.warning("interrupted, but not saved: %s", exc)
            return
        logger.warning(
            "interrupted at step %d: checkpoint saved to %s; continue with resume=True "
            "(aekit sae --resume)",
            self.position["step"],
            self.config.checkpoint_dir,
        )

    def _run(self, stop_after: int | None, stopper: StopOnSignal | None) -> None:
        started = time.perf_counter() - self.elapsed
        budget = self.config.max_rows
        while self.position["epoch"] < self.config.n_epochs:
            if self.position["batch"] == 0:
                self.epoch_state = self.order.get_state()
            else:  # resumed inside an epoch: replay its order
                self.order.set_state(self.epoch_state)
            batches = self.source.epoch(self.order, self.config.batch_size, self.position["batch"])
            for batch in batches:
                if budget is not None and self.position["rows"] >= budget:
                    break
                if stop_after is not None and self.position["step"] >= stop_after:
                    self.stopped = True  # (resumed at or past it: no step more)
                    return
                if budget is not None:
                    batch = batch[: budget - self.position["rows"]]
                self._whole = False  # until the step and its bookkeeping are done
                self._step(batch.to(self.device, non_blocking=True))
                self.elapsed = time.perf_counter() - started
                if self.position["step"] % self.config.log_every == 0:
                    self._record()
                if self._checkpoint_due():
                    self.save_checkpoint()
                self._whole = True
                if stopper is not None and stopper.requested:
                    raise KeyboardInterrupt
                if stop_after is not None and self.position["step"] >= stop_after:
                    self.stopped = True
                    if self.config.checkpoint_dir is not None:
                        self.save_checkpoint()
                    return
            if budget is not None and self.position["rows"] >= budget:
                break
            self._whole = False
            self.position["epoch"] += 1
            self.position["batch"] = 0
            self._whole = True
            if self.source.n_rows is None and getattr(self.source, "one_shot", False):
                break  # an iterator, once spent, has no second epoch
        if self.sums[0] > 0 or not self.history:
            self._record()
        if self.config.checkpoint_dir is not None:
            self.save_checkpoint()

    # -- one step -----------------------------------------------------------------------
    def _step(self, batch: torch.Tensor) -> None:
        module, config = self.module, self.config
        x = batch * module.input_scale
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.position["step"])
        if config.uses_auxk() and self.position["step"] % _AUX_CHECK_EVERY == 0:
            dead = self.since_fired >= config.dead_rows
            self.aux_latents = torch.nonzero(dead).flatten()  # one sync
        aux_latents = self.aux_latents if len(self.aux_latents) else None
        loss, fired, smallest, stats = step_loss(module, x, aux_latents)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.unit_decoder():
            module.remove_parallel_grads()
        clip = config.clip_norm()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        self.optimizer.step()
        if config.unit_decoder():
            module.normalize_decoder()
        module.clamp_thresholds()
        with torch.no_grad():
            self.since_fired = torch.where(fired, 0, self.since_fired + len(x))
            if config.uses_batch_threshold():
                module.threshold.copy_(
                    update_threshold(module.threshold, smallest, config.threshold_lr)
                )
            self.sums += stats.to(torch.float64)
        self.position["step"] += 1
        self.position["batch"] += 1
        self.position["rows"] += len(x)

    def _record(self) -> None:
        """Close the figures summed since the last record into one history entry."""
        sums = dict(zip(STAT_NAMES, self.sums.tolist(), strict=True))
        n = max(sums["rows"], 1.0)
        if not math.isfinite(sums["loss"]):
            raise TrainingDivergedError(
                f"the SAE's loss became {sums['loss']} by step {self.position['step']}; "
                "lower lr or turn on normalize"
            )
        fvu = sums["sse"] / sums["sst"] if sums["sst"] > 0 else float("nan")
        dead = float((self.since_fired >= self.config.dead_rows).float().mean())
        self.history.append(
            {
                "step": self.position["step"],
                "rows": self.position["rows"],
                "epoch": self.position["epoch"],
                "loss": sums["loss"] / n,
                "mse": sums["sse"] / n,
                "explained_variance": 1.0 - fvu,
                "fvu": fvu,
                "l0": sums["l0"] / n,
                "dead_fraction": dead,
                "shrinkage": sums["shrinkage"] / max(sums["nonzero_rows"], 1.0),
                "aux_loss": sums["aux_loss"] / n,
                "sparsity_loss": sums["sparsity_loss"] / n,
                "lr": self.lr_at(max(self.position["step"] - 1, 0)),
                "threshold": float(self.module.threshold),
                "seconds": self.elapsed,
                "rows_per_s": self.position["rows"] / max(self.elapsed, 1e-9),
            }
        )
        self.sums.zero_()

    # -- checkpoints --------------------------------------------------------------------
    def _checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every
        return self.config.checkpoint_dir is not None and self.position["step"] % every == 0

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, for :func:`write_checkpoint`."""
        return {
            "format": SAE_CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "n_features": self.module.n_features,
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "position": dict(self.position),
            "epoch_state": self.epoch_state,
            "order_state": self.order.get_state(),
            "since_fired": self.since_fired,
            "sums": self.sums,
            "history": self.history,
            "elapsed": self.elapsed,
            "aux_latents": self.aux_latents,
            "column_labels": getattr(self.source, "labels", None),
            "decoder_start": self.config.decoder_start(),
        }

    def save_checkpoint(self) -> None:
        """Write the state to ``checkpoint_dir`` (atomically) and prune old checkpoints.

        Raises
        ------
        TrainingDivergedError
            Instead of writing weights or figures that are no longer finite (the loss is
            looked at every ``log_every`` steps only: such a checkpoint would prune the
            good ones).
        """
        folder = self.config.checkpoint_dir
        assert folder is not None
        if not all_finite(self.module, self.sums):
            raise TrainingDivergedError(
                f"the SAE's weights or loss stopped being finite by step {self.position['step']} "
                "(no checkpoint written; the last one is kept); lower lr or turn on normalize"
            )
        path = checkpoint_path(folder, self.position["epoch"], self.position["step"])
        write_checkpoint(path, self.state_dict())
        prune_checkpoints(folder, self.config.keep_checkpoints)

    def load_checkpoint(self, path: str | None = None) -> bool:
        """Restore the newest checkpoint of ``checkpoint_dir`` (or ``path``); False if none."""
        if path is not None:
            found, state = path, check_sae_state(read_checkpoint(path), path)
        else:
            newest = find_checkpoint(self.config.checkpoint_dir, check=check_sae_state)
            if newest is None:
                return False
            found, state = newest
        skip = (*_RUN_FIELDS, "decoder_init_norm")  # compared as the start it resolves to
        mine = {k: v for k, v in self.config.to_dict().items() if k not in skip}
        written = {**SAEConfig.ABSENT_MEANS, **state["config"]}  # older: the old behaviour
        theirs = {k: v for k, v in written.items() if k not in skip}
        start, written_start = self.config.decoder_start(), _written_start(state, written)
        if start != written_start:
            mine["decoder_init_norm"], theirs["decoder_init_norm"] = start, written_start
        if mine != theirs or state["n_features"] != self.module.n_features:
            changed = sorted(
                f"{k} (written {theirs.get(k)!r})" for k in mine if mine[k] != theirs.get(k)
            )
            raise ConfigError(
                f"{found} was written by another run (settings that differ: "
                f"{changed or ['n_features']}); resume with the same settings or start afresh"
            )
        labels, mine = state.get("column_labels"), getattr(self.source, "labels", None)
        refuse_other_columns(labels, mine, found, ConfigError, what="the data's columns")
        if self.config.normalize and not isinstance(self.source, IterableBatches):
            # the scale start() set from the first rows (a one-shot stream is not read ahead)
            rows = self.source.first_rows(self.order, self.config.init_rows).to(self.device)
            ours, theirs = _scale_of(rows), float(state["module"]["input_scale"])
            if not math.isclose(ours, theirs, rel_tol=1e-4):
                raise ConfigError(
                    f"{found} was written for other data: its input scale {theirs:.6g} is not "
                    f"this data's {ours:.6g} (normalize=True); resume on the same rows"
                )
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.position = {k: int(v) for k, v in state["position"].items()}
        self.epoch_state = state["epoch_state"]
        self.order.set_state(state["order_state"])
        self.since_fired = state["since_fired"].to(self.device)
        self.sums = state["sums"].to(self.device)
        self.history = list(state["history"])
        self.elapsed = float(state["elapsed"])
        self.aux_latents = state["aux_latents"].to(self.device)
        return True

"""Sparse autoencoders on SynthSAEBench-style data: aekit against SAELens's own trainer.

Data: ``sae_lens.synthetic``'s generator (a ``SyntheticModel``: a dictionary of ground-truth
feature directions, Zipfian firing probabilities, a hierarchy of parent/child features, noisy
magnitudes, a bias). The default scale fits this 2-core machine: hidden 256, 4,096 true
features (true L0 about 25, measured and recorded), SAE width 1,024, k = 25; the rows are
generated once (``--data-size`` training rows plus a held-out evaluation set of other rows),
cached as ``.npy`` under ``--cache`` and fed to both libraries from memory, so generation
(slow: ~1k rows/s on one core with the hierarchy) is not timed. Each architecture (BatchTopK,
JumpReLU, Matryoshka) is trained by SAELens's ``SAETrainer`` and by aekit's
``SparseAutoencoder`` on the same rows in the same order of passes, the same budget
(``--budget`` rows), batch, learning rate, k, widths and sparsity coefficient, one torch
thread each; then both are judged by the same code on the same evaluation rows: SAELens's
own calculators (``sae_lens.synthetic.evals``: MCC by Hungarian matching of decoder rows to
the true features, F1 of each latent as a detector of its best-matching feature, explained
variance, L0, dead = never active on the evaluation rows, shrinkage). SAELens is judged as
it serves its SAE: ``save_inference_model`` then ``SAE.load_from_disk`` (BatchTopK and
Matryoshka become JumpReLUs of their learned threshold, as aekit serves them).
``samples/s`` is training rows per second of ``fit`` alone (aekit's includes its b_dec
initialisation; SAELens's its trainer setup), under whatever else runs on the machine.

SAELens 6.54 API used here (read from the installed package; /tmp notes shared with the
``sae`` family's author say the same):

- ``sae_lens.{BatchTopK,JumpReLU,MatryoshkaBatchTopK}TrainingSAE(cfg)`` with
  ``*TrainingSAEConfig(d_in, d_sae, ...)``: BatchTopK ``k: float``, ``topk_threshold_lr=0.01``,
  ``aux_loss_coefficient=1.0``, ``rescale_acts_by_decoder_norm=True``; Matryoshka adds
  ``matryoshka_widths`` (increasing, last = d_sae); JumpReLU ``l0_coefficient``,
  ``jumprelu_bandwidth=0.05``, ``jumprelu_init_threshold=0.01``,
  ``jumprelu_sparsity_loss_mode="step"``. Initialisation: W_dec rows of norm 0.1
  (``decoder_init_norm``), W_enc = W_dec.T, biases 0.
- ``sae_lens.SAETrainer(cfg=SAETrainerConfig(total_training_samples, train_batch_size_samples,
  lr, lr_end, dead_feature_window (steps), logger=LoggingConfig(log_to_wandb=False)), sae,
  data_provider=<iterator of (batch, d_in) tensors>).fit()``: Adam, grad-norm clip 1.
- Inference folder (``save_inference_model``): ``cfg.json`` (``architecture`` ``"jumprelu"`` for
  BatchTopK/Matryoshka, ``d_in``, ``d_sae``, ``dtype``, ``device``, ``apply_b_dec_to_input``,
  ``normalize_activations``, ``reshape_activations``, ``metadata`` with ``sae_lens_version``)
  and ``sae_weights.safetensors``: ``W_enc`` (d_in, d_sae), ``b_enc``, ``W_dec`` (d_sae, d_in),
  ``b_dec``, ``threshold`` (d_sae); ``SAE.load_from_disk`` loads strictly (no extra tensors).
- ``sae_lens.synthetic``: ``SyntheticModel(SyntheticModelConfig(num_features, hidden_dim,
  firing_probability=ZipfianFiringProbabilityConfig(...), hierarchy=HierarchyConfig(...),
  std_firing_magnitudes, seed))``, ``.sample_with_features(n)``,
  ``.feature_dict.feature_vectors`` (the true directions); ``mean_correlation_coefficient``,
  ``ClassificationMetricsCalculator``, ``L0Calculator``, ``DeadLatentsCalculator``,
  ``ShrinkageCalculator``, ``feature_uniqueness``; ``sae_lens.evals.ExplainedVarianceCalculator``.

Run it in an environment with both (``pip install -e .[bench]``, which brings ``sae-lens``):
``python benchmarks/sae.py`` (here, under contention: 15 minutes to generate and cache the rows
the first time, then about 35 for the six runs), ``--quick`` for a smoke test (a minute).
``--seed`` draws the data; ``--train-seed`` (default ``--seed``) both libraries' training: aekit's
``random_state`` (initialisation, order of rows), SAELens's torch seed (its initialisation;
its batches come in order). ``benchmarks/sae_seeds.py`` summarises runs over train seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _common import environment, write_json

RESULTS = Path(__file__).parent / "results" / "sae.json"
ARCHITECTURES = ("batchtopk", "jumprelu", "matryoshka")
SCALE = {"hidden": 256, "true_features": 4096, "width": 1024, "k": 25}
QUICK_SCALE = {"hidden": 64, "true_features": 512, "width": 256, "k": 8}
# The shared training configuration (both libraries get these values).
TRAIN = {
    "batch_size": 1024,
    "lr": 1e-3,
    "dead_steps": 250,  # a latent is dead after this many steps without firing (AuxK)
    "jumprelu_l0_coef": 0.15,  # L0 penalty of JumpReLU, per row (both use the same form)
    "jumprelu_bandwidth": 0.05,  # SAELens's default, given to aekit too
    "jumprelu_init_threshold": 0.01,  # SAELens's default, given to aekit too
    # aekit's JumpReLU runs on its defaults: grad_clip="auto" and b_dec_init="auto" give it
    # SAETrainer's clipping at 1.0 and b_dec from zeros (its decoder rows stay of unit norm;
    # decoder_init_norm=0.1 would be SAELens's free-norm geometry)
    "aekit_jumprelu": {},
}


# -- data ---------------------------------------------------------------------------------
def synthetic_model(scale: dict[str, int], seed: int) -> Any:
    """SAELens's generator at ``scale``: Zipfian firing, a feature hierarchy, noisy magnitudes."""
    from sae_lens.synthetic import (
        HierarchyConfig,
        SyntheticModel,
        SyntheticModelConfig,
        ZipfianFiringProbabilityConfig,
    )

    n = scale["true_features"]
    config = SyntheticModelConfig(
        num_features=n,
        hidden_dim=scale["hidden"],
        # max 0.3, min 0.003 over 4,096 features: about 25 active per row with the hierarchy
        firing_probability=ZipfianFiringProbabilityConfig(
            exponent=0.5, max_prob=0.3, min_prob=0.003 * 4096 / n
        ),
        hierarchy=HierarchyConfig(
            total_root_nodes=max(n // 32, 4),
            branching_factor=4,
            max_depth=2,
            mutually_exclusive_portion=0.5,
            compensate_probabilities=True,
        ),
        std_firing_magnitudes=0.15,
        mean_firing_magnitudes=1.0,
        seed=seed,
    )
    return SyntheticModel(config)


def generate(model: Any, n_rows: int, seed: int, chunk: int = 8192) -> tuple[np.ndarray, Any]:
    """``n_rows`` hidden activations (float32) and the true features' firing (CSR of bool)."""
    import scipy.sparse

    torch.manual_seed(seed)
    rows, fires = [], []
    for start in range(0, n_rows, chunk):
        hidden, features = model.sample_with_features(min(chunk, n_rows - start))
        rows.append(hidden.numpy().astype(np.float32))
        fires.append(scipy.sparse.csr_matrix((features > 0).numpy()))
    return np.concatenate(rows), scipy.sparse.vstack(fires, format="csr")


def load_data(args: argparse.Namespace, scale: dict[str, int]) -> dict[str, Any]:
    """The training rows, the evaluation rows with their true firing, the true directions.

    Generated once per (scale, sizes, seed) and cached under ``args.cache``.
    """
    import scipy.sparse

    key = json.dumps([scale, args.data_size, args.eval_size, args.seed], sort_keys=True)
    folder = Path(args.cache) / hashlib.sha256(key.encode()).hexdigest()[:12]
    names = ("train.npy", "eval.npy", "eval_fires.npz", "features.npy", "meta.json")
    if not all((folder / name).exists() for name in names):
        t0 = time.perf_counter()
        model = synthetic_model(scale, args.seed)
        train, _ = generate(model, args.data_size, args.seed + 1)
        evaluation, fires = generate(model, args.eval_size, args.seed + 2)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "train.npy", train)
        np.save(folder / "eval.npy", evaluation)
        scipy.sparse.save_npz(folder / "eval_fires.npz", fires)
        np.save(folder / "features.npy", model.feature_dict.feature_vectors.detach().numpy())
        meta = {"key": key, "generation_seconds": round(time.perf_counter() - t0, 1)}
        (folder / "meta.json").write_text(json.dumps(meta))
        print(f"generated {args.data_size:,} + {args.eval_size:,} rows in {folder}")
    fires = scipy.sparse.load_npz(folder / "eval_fires.npz")
    return {
        "train": np.load(folder / "train.npy", mmap_mode="r"),
        "eval": np.load(folder / "eval.npy"),
        "eval_fires": fires,
        "features": np.load(folder / "features.npy"),
        "true_l0": float(fires.sum(axis=1).mean()),
        "generation_seconds": json.loads((folder / "meta.json").read_text())["generation_seconds"],
    }


def passes(train: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of ``train`` in order, pass after pass (SAELens's data provider)."""
    n_batches = len(train) // batch_size
    while True:
        for b in range(n_batches):
            yield torch.from_numpy(np.array(train[b * batch_size : (b + 1) * batch_size]))


# -- the two libraries --------------------------------------------------------------------
def train_saelens(arch: str, data: dict[str, Any], args: argparse.Namespace, scale: dict) -> Any:
    """SAELens's SAE of ``arch`` trained by ``SAETrainer``; returns (inference SAE, seconds)."""
    import sae_lens
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    d_in, width, k = scale["hidden"], scale["width"], scale["k"]
    # Seeded before the SAE is built: its initialisation is the only draw in SAELens's training
    # (the batches come in order). Files before --train-seed seeded after it: their SAELens
    # rows used torch's default start state, whatever --seed said.
    torch.manual_seed(args.train_seed)
    if arch == "batchtopk":
        sae = sae_lens.BatchTopKTrainingSAE(
            sae_lens.BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=width, k=k)
        )
    elif arch == "matryoshka":
        sae = sae_lens.MatryoshkaBatchTopKTrainingSAE(
            sae_lens.MatryoshkaBatchTopKTrainingSAEConfig(
                d_in=d_in, d_sae=width, k=k, matryoshka_widths=list(widths(width))
            )
        )
    else:
        sae = sae_lens.JumpReLUTrainingSAE(
            sae_lens.JumpReLUTrainingSAEConfig(
                d_in=d_in,
                d_sae=width,
                l0_coefficient=TRAIN["jumprelu_l0_coef"],
                jumprelu_bandwidth=TRAIN["jumprelu_bandwidth"],
                jumprelu_init_threshold=TRAIN["jumprelu_init_threshold"],
            )
        )
    config = SAETrainerConfig(
        total_training_samples=args.budget,
        train_batch_size_samples=TRAIN["batch_size"],
        lr=TRAIN["lr"],
        lr_end=TRAIN["lr"],
        dead_feature_window=TRAIN["dead_steps"],
        logger=LoggingConfig(log_to_wandb=False),
    )
    t0 = time.perf_counter()
    trainer = sae_lens.SAETrainer(
        cfg=config, sae=sae, data_provider=passes(data["train"], TRAIN["batch_size"])
    )
    trainer.fit()
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        sae.save_inference_model(folder)
        served = sae_lens.SAE.load_from_disk(folder)
    return Served(served.encode, served.decode, served.W_dec.detach()), seconds


def train_aekit(arch: str, data: dict[str, Any], args: argparse.Namespace, scale: dict) -> Any:
    """The ``SparseAutoencoder`` of aekit for ``arch`` on the same rows: (served, seconds)."""
    from aekit.sae import SparseAutoencoder

    params: dict[str, Any] = {
        "code_dim": scale["width"],
        "k": scale["k"],
        "batch_size": TRAIN["batch_size"],
        "lr": TRAIN["lr"],
        "max_rows": args.budget,
        "n_epochs": -(-args.budget // len(data["train"])),
        "dead_rows": TRAIN["dead_steps"] * TRAIN["batch_size"],
        "log_every": 10**9,
        "random_state": args.train_seed,
    }
    if arch == "matryoshka":
        params["matryoshka_widths"] = widths(scale["width"])
    if arch == "jumprelu":
        params.update(TRAIN["aekit_jumprelu"])
        params["sparsity_coef"] = TRAIN["jumprelu_l0_coef"]
        params["jumprelu_bandwidth"] = TRAIN["jumprelu_bandwidth"]
        params["jumprelu_init_threshold"] = TRAIN["jumprelu_init_threshold"]
    params.update(args.aekit_params)
    t0 = time.perf_counter()
    sae = SparseAutoencoder(arch, **params).fit(data["train"])
    seconds = time.perf_counter() - t0

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sae.transform(x.numpy()))

    def decode(codes: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sae.inverse_transform(codes.numpy()))

    return Served(encode, decode, torch.from_numpy(sae.components_)), seconds


class Served:
    """An SAE as the evaluation sees it: ``encode``, ``decode`` and the dictionary ``W_dec``."""

    def __init__(
        self,
        encode: Callable[[torch.Tensor], torch.Tensor],
        decode: Callable[[torch.Tensor], torch.Tensor],
        W_dec: torch.Tensor,  # SAELens's name
    ) -> None:
        self.encode, self.decode, self.W_dec = encode, decode, W_dec


LIBRARIES: dict[str, Callable[..., Any]] = {"sae_lens": train_saelens, "aekit": train_aekit}


def widths(width: int) -> tuple[int, ...]:
    """Matryoshka's nested prefix sizes: width/8, width/4, width/2, width."""
    return (width // 8, width // 4, width // 2, width)


# -- the judge ----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(served: Served, data: dict[str, Any], chunk: int = 4096) -> dict[str, float]:
    """SAELens's synthetic-data figures of ``served`` on the evaluation rows."""
    from sae_lens.evals import ExplainedVarianceCalculator
    from sae_lens.synthetic import (
        ClassificationMetricsCalculator,
        DeadLatentsCalculator,
        L0Calculator,
        ShrinkageCalculator,
        feature_uniqueness,
        mean_correlation_coefficient,
    )

    features = torch.from_numpy(data["features"])
    W_dec = served.W_dec.float()
    l0, dead = L0Calculator(), DeadLatentsCalculator(W_dec.shape[0])
    shrink, ev = ShrinkageCalculator(), ExplainedVarianceCalculator()
    classify = ClassificationMetricsCalculator(W_dec, features)
    x_all, fires = data["eval"], data["eval_fires"]
    for start in range(0, len(x_all), chunk):
        x = torch.from_numpy(x_all[start : start + chunk])
        codes = served.encode(x)
        out = served.decode(codes)
        l0.add_batch(codes)
        dead.add_batch(codes)
        shrink.add_batch(out, x)
        ev.add_batch(out, x)
        classify.add_batch(codes, torch.from_numpy(fires[start : start + chunk].toarray()))
    return {
        "mcc": mean_correlation_coefficient(W_dec, features),
        "f1": classify.compute().f1_score,
        "explained_variance": ev.compute(),
        "l0": l0.compute(),
        "dead_pct": 100.0 * dead.compute() / W_dec.shape[0],
        "shrinkage": shrink.compute(),
        "uniqueness": feature_uniqueness(W_dec, features),
    }


def run(arch: str, library: str, data: dict, args: argparse.Namespace, scale: dict) -> dict:
    """Train and judge one (architecture, library); an error is recorded, not raised."""
    row: dict[str, Any] = {"architecture": arch, "library": library, "train_seed": args.train_seed}
    if arch == "jumprelu":
        row["l0_coef"] = TRAIN["jumprelu_l0_coef"]
    try:
        served, seconds = LIBRARIES[library](arch, data, args, scale)
    except Exception as exc:  # one failing side must not end the run
        row["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  {library} {arch}: {row['error']}")
        return row
    if library == "aekit" and args.aekit_params:
        row["aekit_params"] = args.aekit_params
    row.update(evaluate(served, data))
    row["train_seconds"] = seconds
    row["samples_per_s"] = args.budget / seconds
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table, one line per (architecture, library)."""
    cols = ("mcc", "f1", "explained_variance", "l0", "dead_pct", "samples_per_s")
    lines = [f"{'architecture':12} {'library':8} " + " ".join(f"{c:>18}" for c in cols)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['architecture']:12} {r['library']:8} error: {r['error']}")
            continue
        lines.append(
            f"{r['architecture']:12} {r['library']:8} "
            + " ".join(
                f"{r[c]:>18.4f}" if c != "samples_per_s" else f"{r[c]:>18,.0f}" for c in cols
            )
        )
    return "\n".join(lines)


def row_key(row: dict[str, Any], results: dict[str, Any]) -> tuple[str, str, int]:
    """A row's (architecture, library, train seed).

    Rows written before ``train_seed`` was recorded were trained with the data's seed.
    """
    seed = row.get("train_seed", results.get("train_seed", results["seed"]))
    return row["architecture"], row["library"], seed


def merge(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``old``'s results with ``new``'s rows in place of those of the same key (:func:`row_key`).

    Rows of another train seed are added next to the old ones: seeds are runs to compare.

    Both must come from the same data (scale, sizes, data seed) and budget; ``new``'s command
    and environment are kept in ``merged_runs``, next to the rows they wrote.
    """
    same = ("scale", "data_rows", "eval_rows", "budget_rows", "seed", "quick")
    differ = [name for name in same if new.get(name) != old.get(name)]
    if differ:
        raise SystemExit(f"cannot merge runs that differ in {differ}")
    for results in (new, old):  # each row says its train seed once merged
        results["rows"] = [{**r, "train_seed": row_key(r, results)[2]} for r in results["rows"]]
    fresh = {row_key(r, new): r for r in new["rows"]}
    rows = [fresh.pop(row_key(r, old), r) for r in old["rows"]]
    run = {
        "command": new["command"],
        "rows": [list(row_key(r, new)) for r in new["rows"]],
        "train": new["train"],
        "environment": new["environment"],
    }
    return {
        **old,
        "rows": rows + list(fresh.values()),
        "merged_runs": [*old.get("merged_runs", []), run],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the options, run every (architecture, library), print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test at a tiny scale")
    parser.add_argument("--data-size", type=int, help="training rows generated (400,000)")
    parser.add_argument("--eval-size", type=int, help="evaluation rows generated (20,000)")
    parser.add_argument("--budget", type=int, help="training rows per run (1,000,000)")
    parser.add_argument("--architecture", choices=ARCHITECTURES, action="append")
    parser.add_argument("--library", choices=tuple(LIBRARIES), action="append")
    parser.add_argument(
        "--l0-coef", type=float, default=TRAIN["jumprelu_l0_coef"], help="JumpReLU's L0 penalty"
    )
    parser.add_argument(
        "--aekit",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="an extra SparseAutoencoder parameter (VALUE read as JSON), e.g. grad_clip=1.0",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--seed", type=int, default=0, help="the data's seed")
    parser.add_argument(
        "--train-seed", type=int, help="both libraries' training seed (default: --seed)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "aekit-sae-bench"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        type=Path,
        metavar="FILE",
        help="no training: put FILE's rows (a run's --out) into --out in place of those of the "
        "same architecture and library",
    )
    args = parser.parse_args(argv)
    args.train_seed = args.seed if args.train_seed is None else args.train_seed
    if args.merge is not None:
        merged = merge(json.loads(args.merge.read_text()), json.loads(args.out.read_text()))
        write_json(args.out, merged)
        return merged
    scale = QUICK_SCALE if args.quick else SCALE
    defaults = (20_000, 4_000, 60_000) if args.quick else (400_000, 20_000, 1_000_000)
    for name, default in zip(("data_size", "eval_size", "budget"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    TRAIN["jumprelu_l0_coef"] = args.l0_coef
    args.aekit_params = {}
    for item in args.aekit:
        name, _, value = item.partition("=")
        args.aekit_params[name] = json.loads(value)
    torch.set_num_threads(args.threads)
    data = load_data(args, scale)
    rows = []
    for arch in args.architecture or ARCHITECTURES:
        for library in args.library or tuple(LIBRARIES):
            print(f"training {library} {arch} on {args.budget:,} rows ...", flush=True)
            rows.append(run(arch, library, data, args, scale))
    print(table(rows))
    import sae_lens

    results = {
        "benchmark": "sae",
        "command": " ".join(
            ["python benchmarks/sae.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "quick": args.quick,
        "scale": {**scale, "true_l0": data["true_l0"]},
        "data_rows": args.data_size,
        "eval_rows": args.eval_size,
        "budget_rows": args.budget,
        "generation_seconds": data["generation_seconds"],
        "train": TRAIN,
        "matryoshka_widths": widths(scale["width"]),
        "seed": args.seed,
        "train_seed": args.train_seed,
        "sae_lens": sae_lens.__version__,
        "environment": environment("versions", "threads", "cpus", "cpu", "platform"),
        "note": "2-core machine shared with other jobs: samples/s are under contention",
        "rows": rows,
    }
    write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()

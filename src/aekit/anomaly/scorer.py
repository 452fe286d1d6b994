"""The anomaly score as one torch module: what the detector computes and what ONNX exports.

:class:`AnomalyScorer` holds the detector's autoencoders and what it learned from the
training rows, and maps raw rows to four outputs: the first autoencoder's code, its
reconstruction (original units), its reconstruction error (aekit's one unit: the squared
error summed over the row in the model's scaled space) and the anomaly score.

The anomaly score of one autoencoder is a sum of *terms*, each put on a common footing by
its own training distribution: ``(term - median) / IQR`` over the training rows, so a score
of 0 is a typical training row and each unit is one interquartile range of a term.

- **residual**: the squared reconstruction residual in the scaled space, summed over the
  row (rows with missing values: over the observed entries, rescaled by
  ``n_features / n_observed`` as aekit's error unit is, see :mod:`aekit.data.missing`). For a
  table each feature's squared residual is divided by its mean over the training rows (a
  feature the model rebuilds closely weighs more when it fails); for images the residual is
  first averaged over 3×3 neighbourhoods of pixels, so a missing or extra stroke counts for
  more than a stroke drawn one pixel aside.
- **code** (optional): the squared Mahalanobis distance of the row's code to the training
  codes (their mean and Ledoit-Wolf covariance), like Hotelling's T² beside PCA's residual.
- **neighbour** (optional, tables by default): the mean Euclidean distance of the row, in the
  first autoencoder's scaled space, to its :data:`NEIGHBOURS` nearest training rows (a
  training row leaves itself out: its own distance 0 is skipped); at most
  :data:`MAX_REFERENCE` training rows are kept as neighbours. With it, the autoencoder's
  terms weigh :data:`MODEL_TERMS_WEIGHT` each and the neighbour term 1: on ADBench's
  one-class tables (``benchmarks/adbench.py``) the distance to the nearest normal rows
  separates anomalies better than the reconstruction on most tables,
  and the autoencoder's terms add where rows leave the data's manifold (Waveform,
  Cardiotocography, mammography).
- **density** (optional, narrow tables by default): the local outlier factor of the row among
  the same reference rows, with :data:`DENSITY_NEIGHBOURS` neighbours (Breunig et al., 2000):
  the mean reachability distance of the row to its neighbours divided by theirs, so a row in
  a sparse gap between dense clusters stands out even where its plain distance is ordinary.
  Weight :data:`DENSITY_WEIGHT`. On a table of few columns the rows fill the space densely
  and an anomaly is a row of unusual *combination* of values (a swapped feature), which a
  density ratio sees and a global distance or a small code (one unit for up to 15 columns)
  blurs; on wide tables it added nothing or cost (see :mod:`aekit.anomaly.detector`'s rule).
  Every reachability distance is at least :data:`REACH_FLOOR_SHARE` of the reference rows'
  median k-distance (:func:`reach_floor`), so a row repeated more than
  :data:`DENSITY_NEIGHBOURS` times is a dense cluster, not an infinitely dense one beside
  which any new row is flagged.

With several autoencoders (an ensemble over seeds) the scores are averaged.

What each choice measured on the development splits of ``benchmarks/anomaly.py`` (mean
AUROC; MNIST digits 6,000/2,000, tables seeds 100 to 104): pooling image residuals 0.959 →
0.966 (worst digit 0.884 → 0.913), where per-pixel weights cost 0.01; per-feature weights
on tables, with the code term, wine 0.975 → 0.987 and breast cancer 0.956 → 0.957; the code
term on tables +0.02 to +0.04 (breast cancer 0.915 → 0.954 with a code of 2), on digits
−0.003; a kNN distance in code space did worse than the Mahalanobis one on every table.
The neighbour term was chosen on the odd-numbered ADBench tables of ``../shared/data/adbench``
(one-class, seed 0) and confirmed on the even-numbered ones: mean AUROC of the detector
without it 79.8 (dev) / 84.3 (confirm), the neighbour term alone 82.8 / 90.9, with the
autoencoder's terms at 0.1 83.0 / 90.3 (k = 3; k = 1 and k = 5 within 0.25 on dev; the larger
k is kept as the more robust to duplicated rows). The autoencoder's weight is the smallest of
0.1, 0.25, 0.35, 0.5 and 1 that keeps the detector within 0.005 of the best peer on the two
tables of ``benchmarks/anomaly.py`` (70 % of the normal rows, 5 seeds): 0.1 gave breast
cancer 0.954 and wine 0.945, 0.35 0.958 / 0.958, 0.5 0.960 / 0.961 (best peers 0.963 and
0.963); on the ADBench dev tables 0.5 costs 0.6 points of mean AUROC against 0.1.
The density term and its rule (tables of at most 8 columns) were chosen the same way, on
the odd-indexed ADBench tables (sorted names; seed 0; the detector's normalised terms cached
once and combined offline), then confirmed on the even-indexed ones: mean AUROC without →
with it, contextual protocol 72.76 → 73.31 (dev) / 71.55 → 72.26 (confirm), one-class
86.68 → 86.60 / 84.81 → 85.83, unsupervised 81.96 → 81.63 / 71.34 → 72.06 (the tables
measured in each half). On all tables (no width rule) it gained on the contextual ones but
cost a point on the one-class and two on the unsupervised dev tables; k = 10 beat k = 20 and
weight 1 beat 0.5 on the confirm tables. Only tables of at most 8 columns change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import pooling_shape, spatially_coherent
from ..data.missing import empty_rows, fill_holes, observed_share, row_squared_error
from ..estimator.inference import run_in_chunks
from ..model.hourglass import Hourglass
from .search import TREE_MAX_FEATURES, nearest_squared

__all__ = [
    "DENSITY_NEIGHBOURS",
    "DENSITY_WEIGHT",
    "MAX_REFERENCE",
    "MODEL_TERMS_WEIGHT",
    "NEIGHBOURS",
    "REACH_FLOOR_SHARE",
    "TERMS",
    "TREE_MAX_FEATURES",
    "AnomalyScorer",
    "rows_with_values",
]

TERMS = ("residual", "code", "neighbour", "density")  # the order of ``centre``/``spread``
POOL = 3  # images: residuals are averaged over POOL × POOL neighbourhoods before squaring
NEIGHBOURS = 3  # the neighbour term: mean distance to this many nearest training rows
MAX_REFERENCE = 10_000  # training rows kept as neighbours (a seeded sample above that)
MODEL_TERMS_WEIGHT = 0.5  # weight of each autoencoder term beside the neighbour term
DENSITY_NEIGHBOURS = 10  # the density term: local outlier factor among this many neighbours
DENSITY_WEIGHT = 1.0  # weight of the density term (the neighbour term weighs 1)
_LRD_FLOOR = 1e-10  # last-resort reachability floor (every reference row the same)
REACH_FLOOR_SHARE = 0.1  # reachability floor: this share of the median positive k-distance
_SAME_ROW = 1e-5  # a squared distance below this × (|row|² + 1) is the row itself


def rows_with_values(X: Any) -> Any:
    """``X`` without its rows that have no observed value (dense float rows; others as given).

    Such a row scores NaN (:meth:`AnomalyScorer.score`): the scorer is calibrated, and its
    reference rows kept, without it (a mean-filled row at the centre of the data).
    """
    empty = empty_rows(X)
    return X if empty is None or empty.all() else X[~empty]


def _nothing_observed_nan(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` (one per row) with NaN where the row has no observed value."""
    nothing = torch.isnan(rows).all(dim=1)
    return torch.where(nothing, torch.full_like(values, float("nan")), values)


class AnomalyScorer(nn.Module):
    """Raw rows → code, reconstruction, reconstruction error and anomaly score.

    Parameters
    ----------
    members : list of Hourglass
        The detector's autoencoders (same input width), the first one's code and
        reconstruction are the outputs.
    image_shape : tuple of int or None
        ``(channels, height, width)``: pool the residual over pixel neighbourhoods; None for
        tables (per-feature weights instead).
    code_term : bool
        Add the code's Mahalanobis distance to the training codes.
    n_reference : int, default=0
        Training rows kept for the neighbour term; 0: no neighbour term.
    density_term : bool, default=False
        Add the local outlier factor among the reference rows (needs ``n_reference > 1``).

    Attributes
    ----------
    feature_weight : Tensor of shape (n_members, n_features)
        Weight of each feature's squared residual (ones for images).
    code_mean : Tensor of shape (n_members, code_dim)
    code_precision : Tensor of shape (n_members, code_dim, code_dim)
        Mean and inverse covariance of the training codes (code term).
    centre, spread : Tensor of shape (n_members, n_terms)
        Median and interquartile range of each term over the training rows.
    reference : Tensor of shape (n_reference, n_features)
        Training rows in the first autoencoder's scaled space (holes as 0): the neighbours.
    reference_reach, reference_density : Tensor of shape (n_reference,)
        Each reference row's distance to its :data:`DENSITY_NEIGHBOURS`-th neighbour, at
        least :func:`reach_floor` of them all, and its local reachability density (density
        term).
    """

    def __init__(
        self,
        members: list[Hourglass],
        image_shape: tuple[int, ...] | None,
        code_term: bool,
        n_reference: int = 0,
        density_term: bool = False,
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.image_shape = None if image_shape is None else tuple(int(n) for n in image_shape)
        self.code_term = bool(code_term)
        self.n_reference = int(n_reference)
        self.density_term = bool(density_term) and self.n_reference > 1
        m, d, c = len(members), members[0].config.input_dim, members[0].config.code_dim
        if self.n_reference:
            self.register_buffer("reference", torch.zeros(self.n_reference, d))
        if self.density_term:
            self.register_buffer("reference_reach", torch.zeros(self.n_reference))
            self.register_buffer("reference_density", torch.ones(self.n_reference))
        self.register_buffer("feature_weight", torch.ones(m, d))
        self.register_buffer("code_mean", torch.zeros(m, c))
        self.register_buffer("code_precision", torch.eye(c).repeat(m, 1, 1))
        self.register_buffer("centre", torch.zeros(m, len(self.term_names)))
        self.register_buffer("spread", torch.ones(m, len(self.term_names)))

    @property
    def term_names(self) -> tuple[str, ...]:
        """The terms this scorer adds up."""
        wanted = {
            "residual": True,
            "code": self.code_term,
            "neighbour": self.n_reference > 0,
            "density": self.density_term,
        }
        return tuple(name for name in TERMS if wanted[name])

    def term_weights(self) -> list[float]:
        """Each term's weight in the score (lighter autoencoder terms beside a neighbour term)."""
        model = MODEL_TERMS_WEIGHT if self.n_reference else 1.0
        fixed = {"neighbour": 1.0, "density": DENSITY_WEIGHT}
        return [fixed.get(name, model) for name in self.term_names]

    def nearest(self, scaled: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances and indices of scaled rows' ``k`` nearest reference rows, nearest first.

        A row that is one of the reference rows (its nearest distance is 0, up to rounding)
        leaves itself out, so a training row is measured as a new row would be. ``k`` is
        capped at ``n_reference - 1``. The distances are ``|x|² - 2 x·r + |r|²`` in the rows'
        dtype, as the ONNX graph computes them; which reference rows are nearest, ties by
        index as ONNX's ``TopK`` takes them: :func:`~aekit.anomaly.search.nearest_squared`.
        """
        rows = fill_holes(scaled)
        ref = self.reference.to(rows.dtype)
        row_norm = rows.square().sum(dim=1, keepdim=True)
        k = min(k, self.n_reference - 1) if self.n_reference > 1 else 1
        values, indices = nearest_squared(rows, ref, min(k + 1, self.n_reference))
        itself = values[:, :1] <= _SAME_ROW * (row_norm + 1)  # rounding of |x|²-2x·r+|r|²
        # the root in float64: float32's torch.sqrt here gave roots 1e-4 off now and then
        # (one call in four of a process scoring 300 rows twice), and the scores with them
        distance = values.double().sqrt().to(values.dtype)
        pick = torch.where(itself, 1, 0) + torch.arange(k, device=rows.device)[None, :]
        return distance.gather(1, pick), indices.gather(1, pick)

    def neighbour_distance(self, scaled: torch.Tensor) -> torch.Tensor:
        """Mean distance of scaled rows to their :data:`NEIGHBOURS` nearest reference rows."""
        return self.nearest(scaled, NEIGHBOURS)[0].mean(dim=1)

    @staticmethod
    def _reachability(
        distance: torch.Tensor, index: torch.Tensor, k_distance: torch.Tensor
    ) -> torch.Tensor:
        """Mean reachability distance of rows to their neighbours (``index``, ``distance``).

        The reachability distance to a neighbour is the larger of the distance and the
        neighbour's own distance to its :data:`DENSITY_NEIGHBOURS`-th neighbour.
        """
        reach = torch.maximum(distance, k_distance.to(distance.dtype)[index])
        return reach.mean(dim=1) + _LRD_FLOOR

    def local_outlier_factor(
        self, scaled: torch.Tensor, found: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Local outlier factor of scaled rows among the reference rows (density term).

        The neighbours' mean local reachability density over the row's own; about 1 inside
        a cluster, larger in a sparse gap. ``found``: the rows' nearest reference rows
        (:meth:`nearest` with at least :data:`DENSITY_NEIGHBOURS`), if already searched.
        """
        distance, index = self.nearest(scaled, DENSITY_NEIGHBOURS) if found is None else found
        distance, index = distance[:, :DENSITY_NEIGHBOURS], index[:, :DENSITY_NEIGHBOURS]
        reach = self._reachability(distance, index, self.reference_reach)
        density = self.reference_density.to(reach.dtype)[index]
        return density.mean(dim=1) * reach

    # -- the computation ----------------------------------------------------------------
    def _residual(self, residual: torch.Tensor) -> torch.Tensor:
        """Scaled residual rows → what the residual term squares (pooled for images)."""
        if self.image_shape is None:
            return residual
        images = residual.reshape(-1, *self.image_shape)
        pooled = F.avg_pool2d(images, POOL, stride=1, padding=POOL // 2, count_include_pad=False)
        return pooled.flatten(1)

    def member_outputs(
        self, rows: torch.Tensor, i: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Member ``i``'s scaled input, scaled reconstruction and code of raw ``rows``."""
        member = self.members[i]
        scaled = member.scale_input(rows)
        out = member(scaled)
        return scaled, out.recon, out.code

    def raw_terms(self, rows: torch.Tensor) -> torch.Tensor:
        """Every member's terms before normalisation: shape (n_rows, n_members, n_terms).

        The neighbour term is the same for every member (measured in the first one's scaled
        space).
        """
        per_member = []
        neighbour = density = None
        for i in range(len(self.members)):
            scaled, recon, code = self.member_outputs(rows, i)
            if self.n_reference and neighbour is None:  # one search serves both terms
                k = max(NEIGHBOURS, DENSITY_NEIGHBOURS) if self.density_term else NEIGHBOURS
                found = self.nearest(scaled, k)
                neighbour = found[0][:, :NEIGHBOURS].mean(dim=1)
                if self.density_term:
                    density = self.local_outlier_factor(scaled, found)
            holes = torch.isnan(scaled)
            residual = self._residual(fill_holes(recon - scaled))  # holes: no residual
            rescale = observed_share(holes, self.members[i].group_members).to(residual.dtype)
            terms = [(residual.square() * self.feature_weight[i]).sum(dim=1) * rescale]
            if self.code_term:
                centred = code - self.code_mean[i]
                terms.append(((centred @ self.code_precision[i]) * centred).sum(dim=1))
            if neighbour is not None:
                terms.append(neighbour.to(terms[0].dtype))
            if density is not None:
                terms.append(density.to(terms[0].dtype))
            per_member.append(torch.stack(terms, dim=1))
        return torch.stack(per_member, dim=1)

    def score(self, rows: torch.Tensor) -> torch.Tensor:
        """The anomaly score of raw rows: higher means more anomalous.

        NaN for a row with no observed value: nothing in it can show it normal or not (its
        terms read a typical row: no residual, the codes and neighbours of a mean-filled row).
        Infinity for a row with values whose terms overflowed float32 (``inf - inf`` would
        otherwise read as NaN, a row without values): the caller refuses it, naming the row.
        """
        score = self.combine(self.raw_terms(rows))
        score = torch.where(torch.isnan(score), torch.full_like(score, float("inf")), score)
        return _nothing_observed_nan(rows, score)

    def combine(self, terms: torch.Tensor) -> torch.Tensor:
        """The anomaly score from :meth:`raw_terms`: normalised, weighted, averaged."""
        z = (terms - self.centre.to(terms.dtype)) / self.spread.to(terms.dtype)
        if not self.n_reference:  # every term weighs 1
            return z.sum(dim=2).mean(dim=1)
        weighted = sum(z[:, :, j] * w for j, w in enumerate(self.term_weights()))
        return weighted.mean(dim=1)

    def forward(
        self, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw rows → (code, reconstruction in original units, error, anomaly score).

        The error and the score are NaN for a row with no observed value, as in Python.
        """
        scaled, recon, code = self.member_outputs(rows, 0)
        error = row_squared_error(recon, scaled, self.members[0].group_members, dtype=recon.dtype)
        error = _nothing_observed_nan(rows, error)
        return code, self.members[0].unscale_output(recon), error, self.score(rows)

    # -- learning the normalisation from the training rows ------------------------------
    @torch.no_grad()
    def calibrate_(self, X: np.ndarray, chunk_rows: int) -> np.ndarray:
        """Learn weights, code statistics and each term's median and IQR from training rows.

        The detector gives it the rows with an observed value (:func:`rows_with_values`).

        Returns
        -------
        scores : ndarray of shape (n_rows,)
            The training rows' anomaly scores under the calibrated scorer.
        """
        from sklearn.covariance import LedoitWolf

        first = self.members[0]
        for i in range(len(self.members)):
            if self.image_shape is None:  # mean squared residual of each feature

                def squared(rows: torch.Tensor, i: int = i) -> torch.Tensor:
                    scaled, recon, _ = self.member_outputs(rows, i)
                    seen = (~torch.isnan(scaled)).double()  # the observed entries' count
                    return torch.cat([fill_holes(recon - scaled).double().square(), seen], 1)

                d = X.shape[1]
                mean, seen = np.zeros(d), np.zeros(d)
                for start in range(0, X.shape[0], chunk_rows):
                    part = X[start : start + chunk_rows]
                    sums = run_in_chunks(first, part, squared, np.float64, chunk_rows).sum(0)
                    mean, seen = mean + sums[:d], seen + sums[d:]
                mean /= np.maximum(seen, 1)  # each feature's mean over its observed entries
                floor = max(1e-6 * float(mean.mean()), np.finfo(np.float32).tiny)
                weight = 1.0 / np.maximum(mean, floor)
                self.feature_weight[i] = torch.from_numpy(weight / weight.mean()).to(first.offset)
            if self.code_term:
                codes = run_in_chunks(
                    first, X, lambda r, i=i: self.member_outputs(r, i)[2], np.float64, chunk_rows
                )
                covariance = LedoitWolf().fit(codes)
                self.code_mean[i] = torch.from_numpy(covariance.location_).to(first.offset)
                self.code_precision[i] = torch.from_numpy(covariance.precision_).to(first.offset)
        if self.n_reference:
            self._keep_reference(X, chunk_rows)

        terms = run_in_chunks(first, X, self.raw_terms, np.float64, chunk_rows)
        q1, median, q3 = np.percentile(terms, [25, 50, 75], axis=0)
        scale = np.maximum(np.abs(median), 1.0) * 1e-6
        spread = np.maximum(q3 - q1, scale)
        if "neighbour" in self.term_names:  # duplicated rows: an IQR of 0, see row_spacing
            j = self.term_names.index("neighbour")
            spread[:, j] = np.maximum(spread[:, j], REACH_FLOOR_SHARE * row_spacing(self.reference))
        self.centre.copy_(torch.from_numpy(median))
        self.spread.copy_(torch.from_numpy(spread))
        found = torch.from_numpy(terms).to(self.centre.dtype)  # the scores without a 2nd search
        return self.combine(found).double().numpy()

    def _keep_reference(self, X: np.ndarray, chunk_rows: int) -> None:
        """Keep the training rows (a seeded sample of :data:`MAX_REFERENCE`) as neighbours."""
        first = self.members[0]
        n_rows = X.shape[0]
        if n_rows > self.n_reference:
            keep = np.random.default_rng(0).choice(n_rows, self.n_reference, replace=False)
            X = X[np.sort(keep)]
        scaled = run_in_chunks(
            first, X, lambda r: fill_holes(first.scale_input(r)), np.float32, chunk_rows
        )
        self.reference.copy_(torch.from_numpy(np.ascontiguousarray(scaled)))
        if self.density_term:  # each reference row's k-distance, then its density
            k = DENSITY_NEIGHBOURS

            def search(rows: torch.Tensor) -> torch.Tensor:  # (distances, indices) side by side
                distance, index = self.nearest(rows, k)
                return torch.cat([distance.double(), index.double()], dim=1)

            found = torch.from_numpy(run_in_chunks(first, scaled, search, np.float64, chunk_rows))
            k = found.shape[1] // 2  # (capped at n_reference - 1)
            distance, index = found[:, :k].float(), found[:, k:].long()
            k_distance = distance[:, -1].clamp_min(reach_floor(distance))
            self.reference_reach.copy_(k_distance)
            self.reference_density.copy_(1.0 / self._reachability(distance, index, k_distance))


def reach_floor(distance: torch.Tensor) -> float:
    """The smallest reachability distance of the density term, from the reference rows' search.

    :data:`REACH_FLOOR_SHARE` of the median positive k-distance (the last column of
    ``distance``, each reference row's distances to its nearest other reference rows), or
    of the median positive distance where every k-distance is 0; 0 where all are.

    A row repeated more than :data:`DENSITY_NEIGHBOURS` times has k-distance 0: unfloored,
    its density is as good as infinite and a new row a hair away from the copies gets a local
    outlier factor of about 1e10 times that hair. Flooring the neighbours' k-distance, which
    floors every reachability distance, keeps the factor on the data's own scale (a row at
    the floor's distance from the copies scores 1, as a copy does). A floor relative to the
    data leaves ordinary rows alone: on rows without duplicates the nearest k-distances are
    seldom below a tenth of the median. On the 9 ADBench tables of at most 8 columns
    (``benchmarks/adbench.py``, one-class, seed 0) the floor left 6 AUROCs unchanged and
    raised thyroid, annthyroid and mammography by under 0.1 point (mammography's AP
    45.8 → 49.2); a share of 0.3 measured alike (within 0.2 point).
    """
    for values in (distance[:, -1], distance):
        positive = values[values > 0]
        if positive.numel():
            return REACH_FLOOR_SHARE * float(positive.median())
    return 0.0


def row_spacing(reference: torch.Tensor, queries: int = 2_000) -> float:
    """The median distance from a distinct reference row to the nearest other one (0: one row).

    The neighbour term's spread is at least :data:`REACH_FLOOR_SHARE` of it. Where most
    training rows have three or more exact copies their neighbour term is 0, and so is its
    interquartile range: unfloored, a new row a hair away from the copies scored in the
    tens of thousands and every new row was flagged. The spacing of the *distinct* rows keeps
    the term on the data's scale, as :func:`reach_floor` keeps the density term's. Measured
    from at most ``queries`` distinct rows (a seeded sample) to all of them.
    """
    distinct = torch.unique(reference.float(), dim=0)
    if len(distinct) < 2:
        return 0.0
    rows = distinct
    if len(distinct) > queries:
        pick = np.random.default_rng(0).choice(len(distinct), queries, replace=False)
        rows = distinct[torch.from_numpy(np.sort(pick))]
    values, _ = nearest_squared(rows, distinct, 2)  # itself, then the nearest other row
    return float(values[:, 1].clamp_min(0.0).double().sqrt().median())


def image_shape_of(member: Hourglass, image_shape: object, rows: Any) -> tuple[int, ...] | None:
    """The ``(channels, height, width)`` a detector pools residuals over, or None (a table).

    The one rule of :func:`aekit.data.images.pooling_shape`, for ``member``'s input: a
    convolutional model's own shape, else rows it reconstructs through a sigmoid whose
    feature count is a square, where the training ``rows`` drawn so look like images
    (:func:`~aekit.data.images.spatially_coherent`): a table scaled to [0, 1] whose width
    happens to be a square is not pooled, which would tie its scores to its column order.
    """
    config = member.config
    pixels = config.output == "sigmoid"
    shape = pooling_shape(image_shape, config.input_dim, config.image_shape, pixels=pixels)
    guessed = image_shape == "auto" and config.image_shape is None
    return None if guessed and shape and not spatially_coherent(rows, shape) else shape

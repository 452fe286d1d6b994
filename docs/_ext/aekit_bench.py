"""``.. aekit-benchmark:: NAME``: a table generated at build time from benchmarks/results/NAME.json.

Each renderer reads one kind of JSON that a ``benchmarks/`` script writes and returns a header
and rows; nothing is copied by hand, so rerunning a benchmark and rebuilding the docs updates
the page. The directive also prints, under the table, which file and which command it came from.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
Table = tuple[list[str], list[list[str]]]


def _f(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def quality(data: dict[str, Any]) -> Table:
    """benchmarks/quality.py --sections undercomplete: AE vs PCA on MNIST per code size."""
    rows = [
        [
            f"{r['model']}, code {r['code_dim']}",
            _f(r["ae_error"], 2),
            _f(r["pca_error"], 2),
            f"**{_f(r['ratio'])}**",
            str(r["epochs"]),
        ]
        for r in data["undercomplete"]["rows"]
    ]
    return ["model", "AE error", "PCA error", "AE / PCA", "epochs"], rows


def tabular(data: dict[str, Any]) -> Table:
    """benchmarks/tabular.py: held-out error over PCA's per table and code size, three starts."""
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for s in data["summary"]:
        cells.setdefault((s["table"], s["code_dim"]), {})[s["init"]] = s
    rows = []
    for (name, k), entry in cells.items():
        row = [name.replace("_", " "), str(k)]
        for init in ("pca", "random", "auto"):
            found = entry.get(init)
            bold = init == "auto"
            mean = _f(found and found["mean_ratio"])
            row += [f"**{mean}**" if bold else mean, _f(found and found["worst_ratio"])]
        row.append(_f(entry.get("auto", {}).get("seconds"), 1))
        rows.append(row)
    header = ["table", "code", "pca: mean", "worst", "random: mean", "worst",
              "default: mean", "worst", "default s"]  # fmt: skip
    return header, rows


def tabular_tables(data: dict[str, Any]) -> Table:
    """benchmarks/tabular.py: each table's mean ratio over its code sizes, per start."""
    rows = []
    for set_name in ("development", "confirmation"):
        for name, means in data.get("targets", {}).get(set_name, {}).get("table_means", {}).items():
            rows.append([f"{name.replace('_', ' ')} ({set_name})",
                         *(_f(means.get(i)) for i in ("pca", "random", "auto"))])  # fmt: skip
    median = data.get("targets", {}).get("median_of_table_means", {})
    if median:
        rows.append(
            ["median of the tables", *(_f(median.get(i)) for i in ("pca", "random", "auto"))]
        )
    return ["table", "init='pca'", "init='random'", "init='auto' (default)"], rows


def anomaly(data: dict[str, Any]) -> Table:
    """benchmarks/anomaly.py: AUROC on MNIST one-class (mean, worst digit) and two tables."""
    tables = data.get("tables", {})
    names = list(tables)
    rows = []
    for method, result in data["mnist"].items():
        row = [method, _f(result["mean_auroc"]), _f(result["worst_auroc"])]
        for table in names:
            # table rows name their preprocessing in parentheses; match on the method's stem
            stem = method.split(",")[0].split(" (")[0]
            match = next((v for k, v in tables[table].items() if k.startswith(stem)), None)
            row.append(_f(match["mean_auroc"]) if match else "–")
        rows.append(row)
    header = ["method", "MNIST mean", "worst digit", *(n.replace("_", " ") for n in names)]
    return header, rows


def speed(data: dict[str, Any]) -> Table:
    """benchmarks/speed.py: samples/s, ratio to the hand-written loop and test error."""
    rows = []
    for size, block in data["training"].items():
        contenders = block["contenders"]
        hand = contenders.get("hand loop (Adam default)", {}).get("samples_per_s")
        for name, result in contenders.items():
            rate = result["samples_per_s"]
            ratio = _f(rate / hand, 2) if hand else "–"
            widths = "-".join(map(str, block["hidden"]))
            error = _f(result["test_error"], 2)
            rows.append([f"{size} ({widths})", name, f"{rate:,.0f}", ratio, error])
    return ["model", "contender", "samples/s", "× hand loop", "test error"], rows


def contention(data: dict[str, Any]) -> Table:
    """benchmarks/contention.py: samples/s of whole fits beside busy processes, per policy."""
    names: list[str] = []
    for condition in data["conditions"].values():
        names += [n for n in condition["contenders"] if n not in names]
    rows = []
    for label, condition in data["conditions"].items():
        row = [condition.get("setup", label).split(" (/")[0]]
        for name in names:
            result = condition["contenders"].get(name)
            row.append(f"{result['fit']:,.0f}" if result else "–")
        rows.append(row)
    return ["condition", *names], rows


def ensembles(data: dict[str, Any]) -> Table:
    """benchmarks/ensembles.py: an ensemble's fit time over one member's, one pass or not."""
    alone = {r["estimator"]: r for r in data["rows"] if r["members"] == 1}

    def per_epoch(r: dict[str, Any]) -> str:  # CPU seconds per epoch of the longest member
        one = alone.get(r["estimator"])
        if one is None or "cpu_seconds" not in r or r["how"] == "one after another":
            return "–"  # one after another: every member's epochs add up
        each = (r["cpu_seconds"] / r["max_epochs"]) / (one["cpu_seconds"] / one["max_epochs"])
        return _f(each, 2)

    rows = [
        [
            r["estimator"],
            str(r["members"]),
            r["how"],
            _f(r["seconds"], 1),
            f"**{_f(r['x_one_member'], 2)}**",
            _f(r.get("x_one_cpu"), 2),
            per_epoch(r),
            str(r["max_epochs"]),
            ", ".join(str(t) for t in r.get("threads", [])) or "–",
            _f(r.get("rmse")),
        ]
        for r in data["rows"]
    ]
    header = ["estimator", "members", "fitted", "seconds", "× one member", "× one (CPU s)"]
    header += ["× one per epoch (CPU s)"]
    header += ["epochs", "threads", "RMSE"]
    return header, rows


IMPUTERS = ("aekit", "simple", "knn", "iterative_br", "iterative_et")


def impute_penguins(data: dict[str, Any]) -> Table:
    """benchmarks/impute_penguins.py: accuracy on hidden categorical cells, mean over seeds."""
    rows = [
        [m["setting"], f"{round(m['rate'] * 100)} %", _f(m["most_frequent"]),
         _f(m["iterative"]), f"**{_f(m['aekit'])}**"]
        for m in data["means"]
    ]  # fmt: skip
    return ["setting", "MCAR", "most frequent", "IterativeImputer", "aekit"], rows


def shards(data: dict[str, Any]) -> Table:
    """benchmarks/shards.py --section bytes: the most a rank read per epoch, × N / dataset."""
    worst: dict[tuple[int, str], list[float]] = {}
    for r in data["bytes"]:
        entry = worst.setdefault((r["N"], r["data"]), [0.0, 0.0])
        entry[0] = max(entry[0], r["train_fraction"] * r["N"])
        entry[1] = max(entry[1], r["val_fraction"] * r["N"])
    rows = [
        [str(n), kind, _f(train), _f(val, 2)] for (n, kind), (train, val) in sorted(worst.items())
    ]
    return ["N", "data", "training bytes × N / dataset", "validation"], rows


def shards_curve(data: dict[str, Any]) -> Table:
    """benchmarks/shards.py --section curve: --nproc 2 against 1 process, by model size."""
    header = ["hidden", "weights", "batch (in all)", "1 process", "2 processes", "2 / 1"]
    rows = [
        ["-".join(map(str, r["hidden"])), f"{r['weights']:,}", str(r["batch_size"]),
         f"{r['one_process']:,.0f}", f"{r['two_processes']:,.0f}", f"**{_f(r['ratio'], 2)}**"]
        for r in data.get("curve", {}).get("rows", [])
    ]  # fmt: skip
    return header, rows or [["not measured yet", "", "", "", "", ""]]


def fixed_costs(data: dict[str, Any]) -> Table:
    """benchmarks/speed.py --section fixed-costs: seconds before the first step, and share."""
    rows = []
    for name, info in data["fits"].items():
        m = info["median_seconds"]
        rows.append([name, f"{info['epochs']:.0f}", _f(m["total"], 2), _f(m["threads"], 3),
                     _f(m["start"], 3), _f(m["start_validation"], 3),
                     f"**{100 * info['fixed_share']:.1f} %**"])  # fmt: skip
    header = ["fit", "epochs", "total s", "thread probe s", "start (PCA) s", "start validation s",
              "fixed share"]  # fmt: skip
    return header, rows


def epochs(data: dict[str, Any]) -> Table:
    """benchmarks/epochs.py --section slowdown: samples/s by epoch, last over first epochs."""
    rows = [
        [name, run["input_path"], " ".join(f"{s:,.0f}" for s in run["samples_per_s"]),
         f"**{_f(run['last_over_first'], 2)}**"]
        for name, run in data.get("slowdown", {}).items() if isinstance(run, dict)
    ]  # fmt: skip
    return ["run", "path", "samples/s, epoch by epoch", "last / first"], rows


def sparse(data: dict[str, Any]) -> Table:
    """benchmarks/sparse.py --section quality: held-out error, sparse rows, vs TruncatedSVD."""
    rows = [
        [r["data"].replace("_", " "), str(r["k"]), r["path"], _f(r["autoencoder"], 2),
         _f(r["truncated_svd"], 2), _f(r["pca_arpack"], 2), f"**{_f(r['ae_over_svd'])}**"]
        for r in data["quality"]
    ]  # fmt: skip
    header = ["data", "code", "path", "AE error", "TruncatedSVD", "PCA (arpack)", "AE / SVD"]
    return header, rows


def adbench(data: dict[str, Any]) -> Table:
    """benchmarks/adbench.py: per protocol, each method's mean AUROC, mean rank, misses."""
    rows = []
    for protocol, got in data["protocols"].items():
        ordered = sorted(got["summary"].items(), key=lambda kv: -kv[1]["mean_auroc"])
        for name, s in ordered:
            published = "mean_rank" not in s
            rows.append([
                protocol,
                f"{name} (DTE README)" if published else name,
                f"**{_f(s['mean_auroc'], 2)}**" if name == "aekit detector" else
                _f(s["mean_auroc"], 2),
                "–" if published else _f(s["mean_rank"], 2),
                "–" if published else str(len(s["tables_2_below_pca"])),
                "–" if published else _f(s["median_seconds"], 2),
            ])  # fmt: skip
    header = ["protocol", "method", "mean AUROC", "mean rank", "tables > 2 below PCA", "median s"]
    return header, rows


def _auroc_cells(result: dict[str, Any], measured: list[str]) -> list[str]:
    """One table's AUROC of each ``measured`` method, the best of all its methods in bold."""
    best = max(v["auroc"] for k, v in result.items() if not k.startswith("_"))
    cells = []
    for name in measured:
        value = result.get(name, {}).get("auroc")
        text = _f(value, 1)
        cells.append(f"**{text}**" if value is not None and value == best else text)
    return cells


def adbench_tables(data: dict[str, Any]) -> Table:
    """benchmarks/adbench.py: one-class AUROC per table, aekit beside peers and DTE's columns."""
    got = data["protocols"]["one-class"]["tables"]
    measured = ["aekit detector", "PyOD KNN", "PyOD PCA", "PyOD IForest", "PyOD LOF"]
    published = ["DTE-NP", "KNN", "PCA"]
    rows = []
    for table, result in got.items():
        cells = _auroc_cells(result, measured)
        cells += [_f(result["_published"].get(m), 1) for m in published]
        rows.append([table, *cells])
    header = ["table", *(m.removeprefix("PyOD ") for m in measured),
              *(f"{m} (published)" for m in published)]  # fmt: skip
    return header, rows


def adbench_contextual(data: dict[str, Any]) -> Table:
    """benchmarks/adbench.py --protocol contextual: AUROC per table, misses against LOF/IForest."""
    got = data["protocols"]["contextual"]
    measured = ["aekit detector", "PyOD LOF", "PyOD IForest", "PyOD KNN"]
    rows = []
    for table, result in got["tables"].items():
        cells = _auroc_cells(result, measured)
        mine = result["aekit detector"]["auroc"]
        missed = [p.removeprefix("PyOD ") for p in measured[1:3] if result[p]["auroc"] > mine]
        rows.append([table, *cells, "below " + ", ".join(missed) if missed else "met"])
    summary = got.get("summary", {})
    rows.append(["mean", *(_f(summary.get(n, {}).get("mean_auroc"), 1) for n in measured), ""])
    header = ["table", *(m.removeprefix("PyOD ") for m in measured), "target (≥ LOF, IForest)"]
    return header, rows


def adversarial(data: dict[str, Any]) -> Table:
    """scripts/adversarial.py: cases tried, good and bad by kind; the bombs' peak memory."""
    rows = [
        [kind, str(c.get("tried", 0)), str(c.get("good", 0)), f"**{c.get('bad', 0)}**"]
        for kind, c in data["counts"].items()
    ]
    total = data["total"]
    rows.append(["all", str(total.get("tried", 0)), str(total.get("good", 0)),
                 f"**{total.get('bad', 0)}**"])  # fmt: skip
    rows.append([f"bombs' worker peak RSS: {data['bomb_peak_rss_mb']:.0f} MiB", "", "", ""])
    return ["kind", "tried", "good", "bad"], rows


def sae(data: dict[str, Any]) -> Table:
    """benchmarks/sae.py: each architecture trained by SAELens and by aekit, judged alike."""
    rows = []
    for r in data["rows"]:
        arch = r["architecture"]
        if "l0_coef" in r:  # JumpReLU rows run at more than one L0 penalty
            arch = f"{arch} (L0 coef {r['l0_coef']:g})"
        if "error" in r:
            rows.append([arch, r["library"], f"error: {r['error']}", *["–"] * 6])
            continue
        rows.append([
            arch, r["library"], _f(r["mcc"]), _f(r["f1"]),
            _f(r["explained_variance"]), _f(r["l0"], 1), _f(r["dead_pct"], 1),
            f"{r['samples_per_s']:,.0f}",
        ])  # fmt: skip
    header = ["architecture", "library", "MCC", "F1", "explained variance", "L0", "dead %",
              "samples/s"]  # fmt: skip
    return header, rows


def _cell_label(cell: dict[str, Any]) -> str:
    return f"{cell['mechanism'].upper()} {round(cell['rate'] * 100)} %"


def _colour(ratio: float | None) -> str:
    """Green below 1 (aekit beats every peer), white at 1, red from 1 up to 1.2 and beyond."""
    if ratio is None:
        return "#eeeeee"
    depth = min(abs(ratio - 1.0) / 0.2, 1.0)
    fade = round(255 - 135 * depth)
    return f"rgb({fade},255,{fade})" if ratio < 1 else f"rgb(255,{fade},{fade})"


def impute_grid_html(data: dict[str, Any]) -> str:
    """benchmarks/impute.py: the grid as a heat map, aekit / best peer per table and cell."""
    cells = data["grid"]["cells"]
    columns = list(dict.fromkeys(_cell_label(c) for c in cells))
    by_table: dict[str, dict[str, dict[str, Any]]] = {}
    for c in cells:
        by_table.setdefault(c["table"], {})[_cell_label(c)] = c
    decide = set(data["grid"]["summary"].get("decide_tables", []))
    parts = ['<table class="aekit-bench aekit-heatmap">', "<thead><tr><th>table</th>"]
    parts += [f"<th>{html.escape(col)}</th>" for col in columns]
    parts.append("</tr></thead><tbody>")
    for table, row in by_table.items():
        first = next(iter(row.values()))
        mark = " (decide)" if table in decide else ""
        name = f"{table.replace('adbench:', '')}{mark}, {first['rows']}×{first['columns']}"
        parts.append(f"<tr><th>{html.escape(name)}</th>")
        for col in columns:
            cell = row.get(col)
            ratio = None if cell is None else cell["ratio"]
            peer = "" if cell is None or not cell["best_peer"] else cell["best_peer"]
            text = "–" if ratio is None else f"{ratio:.2f}"
            parts.append(
                f'<td style="background:{_colour(ratio)}" title="best peer: '
                f'{html.escape(peer)}">{text}</td>'
            )
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def impute_grid_summary(data: dict[str, Any]) -> Table:
    """benchmarks/impute.py: mean ratio, share of cells aekit wins, worst cell, per half."""
    rows = []
    for part, found in data["grid"]["summary"].items():
        if part not in ("all", "decide", "confirm") or not found.get("cells"):
            continue
        worst = found["worst"]
        rows.append([
            part, str(found["cells"]), f"**{_f(found['mean_ratio'])}**",
            f"{found['share_best']:.0%}", str(found["cells_above_1"]),
            f"{worst['table']} {worst['mechanism']} {round(worst['rate'] * 100)} %: "
            f"{_f(worst['ratio'])} ({worst['best_peer']})",
        ])  # fmt: skip
    return ["tables", "cells", "mean aekit / best", "aekit best", "cells > 1", "worst cell"], rows


def impute_grid_seconds(data: dict[str, Any]) -> Table:
    """benchmarks/impute.py: fit + transform seconds per table, mean over its cells."""
    found = data["grid"]["summary"]
    names = list(found["median_seconds"])
    rows = [
        [table, f"{t['rows']}×{t['columns']}", *(_f(t[n], 2) for n in names)]
        for table, t in found["seconds"].items()
    ]
    rows.append(["**median**", "", *(f"**{_f(found['median_seconds'][n], 2)}**" for n in names)])
    return ["table", "shape", *names], rows


def impute_mnist_grid(data: dict[str, Any]) -> Table:
    """benchmarks/impute.py --sections mnist: RMSE in pixel units and aekit / best peer."""
    names = list(data["mnist"][0]["means"]) if data.get("mnist") else []
    rows = []
    for case in data.get("mnist", []):
        got = [case["means"][n] for n in names]
        shown = [_f(g["rmse"], 4) if isinstance(g, dict) else str(g) for g in got]
        rows.append([case["case"], *shown, f"**{_f(case['ratio'])}**"])
    if not rows:  # the section was not part of the run
        return ["case", "aekit / best"], [["not measured in this run", "–"]]
    return ["case", *names, "aekit / best"], rows


def impute_categorical(data: dict[str, Any]) -> Table:
    """benchmarks/impute.py --sections categorical: accuracy on hidden categorical cells."""
    rows = [
        [r["table"], ", ".join(r["categorical"]), f"{round(r['rate'] * 100)} %",
         _f(r["most_frequent"]), _f(r["random_forest"]), f"**{_f(r['aekit'])}**"]
        for r in data.get("categorical", [])
    ] or [["not measured in this run", "", "", "", "", ""]]  # fmt: skip
    return ["table", "columns", "MCAR", "most frequent", "random forest", "aekit"], rows


HTML_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "impute_grid": impute_grid_html,
}

RENDERERS: dict[str, Callable[[dict[str, Any]], Table]] = {
    "adbench": adbench,
    "adversarial": adversarial,
    "adbench_tables": adbench_tables,
    "adbench_contextual": adbench_contextual,
    "quality": quality,
    "tabular": tabular,
    "tabular_tables": tabular_tables,
    "anomaly": anomaly,
    "speed": speed,
    "contention": contention,
    "ensembles": ensembles,
    "impute_penguins": impute_penguins,
    "impute_grid_summary": impute_grid_summary,
    "impute_grid_seconds": impute_grid_seconds,
    "impute_mnist_grid": impute_mnist_grid,
    "impute_categorical": impute_categorical,
    "shards": shards,
    "shards_curve": shards_curve,
    "sparse": sparse,
    "fixed_costs": fixed_costs,
    "epochs": epochs,
    "sae": sae,
}


def _cell(text: str) -> str:
    """Escape what reStructuredText would read as markup, except a whole **bold** cell."""
    bold = text.startswith("**") and text.endswith("**")
    core = text[2:-2] if bold else text
    for char in ("\\", "*", "`", "|", "_"):
        core = core.replace(char, "\\" + char)
    return f"**{core}**" if bold else core


def list_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of an RST list-table."""
    lines = [".. list-table::", "   :header-rows: 1", "   :class: aekit-bench", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {_cell(row[0])}")
        lines += [f"     - {_cell(cell)}" for cell in row[1:]]
    return lines


class AekitBenchmark(SphinxDirective):
    """Render benchmarks/results/<argument>.json with the renderer named by ``:kind:``."""

    required_arguments = 1
    option_spec = {"kind": str}

    def run(self) -> list[nodes.Node]:
        """The table's nodes, parsed from generated RST."""
        name = self.arguments[0]
        path = RESULTS / f"{name}.json"
        self.env.note_dependency(str(path))
        kind = self.options.get("kind", name.split("-")[0])
        if kind not in RENDERERS and kind not in HTML_RENDERERS:
            known = sorted([*RENDERERS, *HTML_RENDERERS])
            raise self.error(f"no renderer {kind!r} for {path.name}; known: {known}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise self.error(f"cannot read {path}: {exc}") from None
        source = ["", f"*Generated from* ``benchmarks/results/{path.name}``."]
        container = nodes.container()
        if kind in HTML_RENDERERS:
            container += nodes.raw("", HTML_RENDERERS[kind](data), format="html")
            lines = source
        else:
            lines = list_table(*RENDERERS[kind](data)) + source
        self.state.nested_parse(StringList(lines, source=str(path)), self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("aekit-benchmark", AekitBenchmark)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The documentation site: built once with warnings as errors, every gallery example run.

The session fixture builds ``docs/`` the way ``python -m sphinx -W -b html docs OUT`` does,
with ``AEKIT_DOCS_QUICK=1`` (each example in its small CI mode), and records the build's and
each example's time (printed at the end of the run). The tests then check the claims the
pages make where that is cheap, that every internal link resolves, and (marked ``browser``)
that the pages load in headless Chromium over localhost without console errors, with every
image decoded and the search page answering. Without the ``docs`` extra every test here
skips, saying so.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.helpers import DOCS_TIMES, chromium

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("plot_*.py"))
GENERATED = ("_build", "auto_examples", "generated", "sg_execution_times.rst")
NEEDED = ("sphinx", "sphinx_gallery", "numpydoc", "pydata_sphinx_theme")
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"docs: needs the docs extra (pip install -e '.[docs]'); missing {MISSING}",
)


@pytest.fixture(scope="session")
def site(tmp_path_factory, pytestconfig) -> Path:
    """Build the site once (gallery in CI mode); fail with sphinx's own words.

    The build runs on a copy of ``docs/`` beside links to ``src/`` and ``benchmarks/``, so the
    checkout is left as it was and parallel sessions do not share sphinx-gallery's output.
    ``AEKIT_DOCS_SITE=DIR`` checks a site already built into DIR (with ``AEKIT_DOCS_QUICK=1``)
    instead: for working on these tests.
    """
    if os.environ.get("AEKIT_DOCS_SITE"):
        return Path(os.environ["AEKIT_DOCS_SITE"])
    work = tmp_path_factory.mktemp("docs")
    repo = work / "repo"
    shutil.copytree(DOCS, repo / "docs", ignore=shutil.ignore_patterns(*GENERATED))
    for name in ("src", "benchmarks"):
        (repo / name).symlink_to(ROOT / name, target_is_directory=True)
    out = work / "html"
    env = dict(os.environ, AEKIT_DOCS_QUICK="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.pop("AEKIT_DOCS_NO_GALLERY", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(work / "doctrees"), str(repo / "docs"), str(out)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    times = example_times(repo / "docs")
    pytestconfig.stash[DOCS_TIMES] = f"docs build (AEKIT_DOCS_QUICK=1): {seconds:.0f} s; " + (
        ", ".join(f"{name} {t:.1f} s" for name, t in times.items())
    )
    (out / "example_times.json").write_text(json.dumps(times))
    return out


def example_times(docs: Path) -> dict[str, float]:
    """Seconds per example from sphinx-gallery's sg_execution_times.rst."""
    text = (docs / "auto_examples" / "sg_execution_times.rst").read_text()
    found = re.findall(r"\(``(plot_\w+)\.py``\)\s*\n\s*- (\d+):(\d+\.\d+)", text)
    return {name: int(m) * 60 + float(s) for name, m, s in found}


def page_text(site: Path, relative: str) -> str:
    """A page's visible text, tags stripped and entities decoded."""
    raw = (site / relative).read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def printed(site: Path, example: str) -> str:
    """What a gallery example printed (its output blocks), as text."""
    raw = (site / "auto_examples" / f"{example}.html").read_text()
    blocks = re.findall(r'class="sphx-glr-script-out[^"]*".*?<pre>(.*?)</pre>', raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", "\n".join(blocks)))


# -- the build ---------------------------------------------------------------------------------
@pytest.mark.slow  # the docs build (minutes)
def test_every_example_ran_printed_and_drew(site):
    recorded = site / "example_times.json"  # absent in a site built by hand
    times = json.loads(recorded.read_text()) if recorded.exists() else example_times(DOCS)
    assert set(times) == {p.stem for p in EXAMPLES}
    for path in EXAMPLES:
        page = (site / "auto_examples" / f"{path.stem}.html").read_text()
        assert f"sphx_glr_{path.stem}_001.png" in page, path.stem
        assert printed(site, path.stem).strip(), f"{path.stem} printed nothing"


@pytest.mark.slow  # the docs build (minutes)
def test_api_cli_and_benchmark_pages_are_generated(site):
    from aekit.cli.parser import build_parser

    api = page_text(site, "generated/aekit.Autoencoder.html")
    assert "code_dim" in api and "sparsity_weight" in api and "reconstruction_error" in api
    cli = page_text(site, "cli.html")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        assert f"aekit {name}" in cli
        for action in command._actions:
            for option in action.option_strings:
                if action.help != "==SUPPRESS==":
                    assert option in cli, (name, option)
    bench = page_text(site, "benchmarks.html")
    tabular = json.loads((ROOT / "benchmarks/results/tabular.json").read_text())
    for row in tabular["summary"]:
        assert f"{row['mean_ratio']:.3f}" in bench, row
    sparse = json.loads((ROOT / "benchmarks/results/sparse.json").read_text())
    for row in sparse["quality"]:
        assert f"{row['ae_over_svd']:.3f}" in bench, row


@pytest.mark.slow  # the docs build (minutes)
def test_internal_links_resolve(site):
    pages = [p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts]
    ids = {p: set(re.findall(r'\bid="([^"]+)"', p.read_text())) for p in pages}
    broken = []
    for page, _ in ids.items():
        for target in re.findall(r'(?:href|src)="([^"]+)"', page.read_text()):
            parts = urlsplit(html.unescape(target))
            if parts.scheme or parts.netloc or target.startswith(("mailto:", "javascript:")):
                continue
            path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{page.relative_to(site)} -> {target}")
            elif parts.fragment and path in ids and parts.fragment not in ids[path]:
                broken.append(f"{page.relative_to(site)} -> {target} (no such anchor)")
    assert not broken, broken[:20]


# -- the claims the gallery makes ------------------------------------------------------------------
def _numbers(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", line)]


@pytest.mark.slow  # the docs build (minutes)
def test_overcomplete_plain_model_memorises_more_than_undercomplete(site):
    rows = [line.split() for line in printed(site, "plot_01_overcomplete").splitlines()]
    plain = {int(r[1]): float(r[-1]) for r in rows if r and r[0] == "plain"}
    masked = [float(r[-1]) for r in rows if r and r[0] == "denoising"]
    narrow, wide = min(plain), max(plain)
    assert wide > 64 > narrow and plain[wide] > 2 * plain[narrow]  # held-out / train gap
    assert max(masked) < min(plain[k] for k in plain if k >= 64)  # noise holds the gap down


@pytest.mark.slow  # the docs build (minutes)
def test_pca_needs_more_components_than_the_code(site):
    out = printed(site, "plot_02_code_size")
    rows = [r.split() for r in out.splitlines() if re.match(r"\s*\d+\s+\d", r)]
    assert rows and all(int(r[-1]) > int(r[0]) for r in rows), out


@pytest.mark.slow  # the docs build (minutes)
def test_l1_sparsity_rises_with_lambda(site):
    out = printed(site, "plot_03_sparse_codes")
    l0 = [float(r.split()[1]) for r in out.splitlines() if re.match(r"\s*\d+e-\d+\s", r)]
    assert len(l0) >= 3 and l0 == sorted(l0, reverse=True), out


@pytest.mark.slow  # the docs build (minutes)
def test_denoising_beats_plain_and_pca_on_noisy_digits(site):
    out = printed(site, "plot_04_denoising")
    for row in (r for r in out.splitlines() if re.match(r"\s*0\.\d\s", r)):
        noisy, plain, dae, pca = _numbers(row)[1:]
        assert dae < min(plain, pca, noisy), row


@pytest.mark.slow  # the docs build (minutes)
def test_a_large_eigengap_is_found_faster(site):
    out = printed(site, "plot_05_linear_pca")
    rows = {
        gap: _numbers(next(s for s in out.splitlines() if s.strip().startswith(f"eigengap {gap} ")))
        for gap in ("16", "1.1")
    }
    # the largest angle to PCA's subspace after 10 passes, and at the end (degrees)
    assert 3 * rows["16"][-2] < rows["1.1"][-2] and rows["16"][-1] < 2.0, out


@pytest.mark.slow  # the docs build (minutes)
def test_detector_separates_digits(site):
    out = printed(site, "plot_06_anomaly")
    assert _numbers(re.search(r"mean AUROC: detector \S+", out).group())[0] > 0.9, out


@pytest.mark.slow  # the docs build (minutes)
def test_streamed_fit_peak_is_below_the_file_size(site):
    out = printed(site, "plot_08_streaming")
    size = float(re.search(r"file size:\s+(\d+) MiB", out).group(1))
    streamed = float(re.search(r"streamed fit:\s+(-?\d+) MiB", out).group(1))
    in_memory = float(re.search(r"np.load \+ fit:\s+(-?\d+) MiB", out).group(1))
    assert streamed < size <= in_memory, out


@pytest.mark.slow  # the docs build (minutes)
def test_resumed_fit_equals_the_uninterrupted_one(site):
    out = printed(site, "plot_09_resume")
    assert "codes True (max |difference| 0.0), loss history True" in out, out


# -- claims of the prose pages ---------------------------------------------------------------------
@pytest.mark.slow  # imports every page's names in a new interpreter
def test_every_import_in_the_pages_works():
    """Each ``from aekit... import ...`` line of a page imports (no stale module paths)."""
    lines = {
        line.strip()
        for page in DOCS.rglob("*.rst")
        if "_build" not in page.parts and "auto_examples" not in page.parts
        for line in page.read_text().splitlines()
        if re.match(r"\s*(from aekit\S* import \w|import aekit)", line)
    }
    assert len(lines) >= 5
    code = "\n".join(lines)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_plots_come_with_a_plain_install():
    """aekit demo draws its report: matplotlib is a core dependency, not an extra."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("matplotlib") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert set(extras["docs"]) <= set(extras["dev"])  # .ci/run installs dev: it builds docs


# -- in a browser ----------------------------------------------------------------------------------
_PROBE = """<script>
window.__errors = [];
for (const level of ["error", "warn"]) {  // console errors and warnings count as failures
  const original = console[level].bind(console);
  console[level] = (...args) => {
    window.__errors.push(level + ": " + args.join(" "));
    original(...args);
  };
}
window.addEventListener("error", (e) => {
  window.__errors.push(e.message || ("failed to load " + (e.target.src || e.target.href)));
}, true);
window.addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
window.addEventListener("load", () => setTimeout(() => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter((i) => !(i.complete && i.naturalWidth > 0));
  document.body.setAttribute("data-probe",
    "images " + imgs.length + " broken " + bad.length + " errors " + window.__errors.length);
  document.body.setAttribute("data-errors", window.__errors.join(" | "));
  console.log("probe done");
}, 1500));
</script>"""


class _Handler(SimpleHTTPRequestHandler):
    """Serves the built site, adds the probe to each page, records every response code."""

    codes: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):
        self.codes.append((self.path, int(code)))

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_bytes().replace(b"<head>", b"<head>" + _PROBE.encode(), 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        import io

        return io.BytesIO(body)


@pytest.fixture()
def served(site):
    codes: list[tuple[str, int]] = []
    handler = type("Handler", (_Handler,), {"codes": codes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", codes
    finally:
        server.shutdown()
        server.server_close()


def _open(url: str) -> tuple[str, list[str]]:
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=8000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


@pytest.mark.slow  # the docs build (minutes)
@pytest.mark.browser  # conftest skips it, saying why, where there is no chromium
@pytest.mark.parametrize(
    "page",
    [
        "index.html",
        "auto_examples/plot_03_sparse_codes.html",
        "auto_examples/index.html",
        "generated/aekit.Autoencoder.html",
        "cli.html",
        "benchmarks.html",
        "search.html?q=eigengap",
    ],
)
def test_page_loads_in_chromium_without_errors(served, page):
    base, codes = served
    dom, console = _open(f"{base}/{page}")
    probe = re.search(r'data-probe="images (\d+) broken (\d+) errors (\d+)"', dom)
    assert probe, (dom[-2000:], console)
    errors = re.search(r'data-errors="([^"]*)"', dom).group(1)
    assert probe.group(2) == "0" and probe.group(3) == "0", (probe.group(), errors)
    # the theme logs what it does with console.log ("[PST]: ..."); anything uncaught fails
    assert any("probe done" in c for c in console) and not [
        c for c in console if "Uncaught" in c
    ], console
    # every request the page made was answered (the browser's own /favicon.ico probe aside)
    assert not [c for c in codes if c[1] >= 400 and c[0] != "/favicon.ico"], codes
    if page.startswith("auto_examples/plot_"):
        assert int(probe.group(1)) >= 3  # the figures
    if page.startswith("search"):
        results = re.search(r'<ul[^>]*class="search"[^>]*>(.*?)</ul>', dom, flags=re.S)
        assert results and "linear_pca" in results.group(1), dom[-3000:]


@pytest.mark.slow  # the docs build (minutes)
def test_sae_example_finds_the_planted_features_and_round_trips(site):
    out = printed(site, "plot_10_sae")
    rows = {
        r.split()[0]: _numbers(r)
        for r in out.splitlines()
        if r.split()[:1] in (["batchtopk"], ["jumprelu"], ["matryoshka"])
    }
    assert set(rows) == {"batchtopk", "jumprelu", "matryoshka"}, out
    assert all(numbers[0] > 0.7 for numbers in rows.values()), out  # MCC
    assert "largest code difference after the round trip: 0.0e+00" in out, out


# -- the benchmark renderers, on a small JSON ------------------------------------------------------
def _bench_extension():
    """docs/_ext/aekit_bench.py, imported from its file (it is no package)."""
    spec = importlib.util.spec_from_file_location("aekit_bench", DOCS / "_ext" / "aekit_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grid_json() -> dict:
    def cell(table, mechanism, rate, aekit, knn):
        ratio = aekit / knn
        means = {
            "aekit": {"rmse": aekit, "mae": aekit, "seconds": 2.0},
            "knn": {"rmse": knn, "mae": knn, "seconds": 0.1},
            "iterative_et": "timeout",
        }
        return {
            "table": table,
            "rows": 100,
            "columns": 5,
            "mechanism": mechanism,
            "rate": rate,
            "seeds": 1,
            "means": means,
            "best_peer": "knn",
            "ratio": ratio,
            "runs": [],
        }

    cells = [cell("wine", "mcar", 0.1, 0.5, 1.0), cell("wine", "mnar", 0.5, 1.3, 1.0),
             cell("adbench:Pima", "mcar", 0.1, 0.9, 1.0)]  # fmt: skip
    worst = {"table": "wine", "mechanism": "mnar", "rate": 0.5, "ratio": 1.3, "best_peer": "knn"}
    summary = {
        "all": {"cells": 3, "mean_ratio": 0.9, "share_best": 2 / 3, "cells_above_1": 1,
                "worst": worst},
        "decide": {"cells": 2, "mean_ratio": 0.9, "share_best": 0.5, "cells_above_1": 1,
                   "worst": worst},
        "confirm": {"cells": 0}, "decide_tables": ["wine"],
        "seconds": {"wine": {"rows": 100, "columns": 5, "aekit": 2.0, "knn": 0.1,
                             "iterative_et": None}},
        "median_seconds": {"aekit": 2.0, "knn": 0.1, "iterative_et": None},
    }  # fmt: skip
    categorical = [
        {
            "table": "penguins",
            "categorical": ["species", "sex"],
            "rate": 0.3,
            "seeds": 1,
            "aekit": 0.9,
            "most_frequent": 0.5,
            "random_forest": 0.8,
        }
    ]
    mnist = [{"case": "quadrant", "means": {"aekit": {"rmse": 0.2}, "knn": "timeout"},
              "best_peer": None, "ratio": None}]  # fmt: skip
    return {"grid": {"cells": cells, "summary": summary}, "categorical": categorical,
            "mnist": mnist}  # fmt: skip


def test_impute_grid_heat_map_colours_each_cell_by_its_ratio():
    """Green where aekit beats the best peer, red where it loses, grey where nothing was scored."""
    bench = _bench_extension()
    page = bench.impute_grid_html(_grid_json())
    assert page.count("<tr>") == 3  # the header, wine, Pima
    assert "wine (decide), 100×5" in page and "Pima, 100×5" in page
    assert "<th>MCAR 10 %</th>" in page and "<th>MNAR 50 %</th>" in page
    assert 'style="background:rgb(120,255,120)" title="best peer: knn">0.50<' in page
    assert 'style="background:rgb(255,120,120)" title="best peer: knn">1.30<' in page
    assert 'background:#eeeeee" title="best peer: ">–<' in page  # Pima has no MNAR 50 cell
    assert bench._colour(1.0) == "rgb(255,255,255)"


def test_impute_grid_tables_render_summary_seconds_and_categories():
    """The summary, time, MNIST and categorical tables show the JSON's figures."""
    bench = _bench_extension()
    data = _grid_json()
    header, rows = bench.impute_grid_summary(data)
    assert [r[0] for r in rows] == ["all", "decide"]  # an empty half is left out
    assert rows[0][2:5] == ["**0.900**", "67%", "1"] and "wine mnar 50 %: 1.300 (knn)" in rows[0]
    header, rows = bench.impute_grid_seconds(data)
    assert header == ["table", "shape", "aekit", "knn", "iterative_et"]
    assert rows[0] == ["wine", "100×5", "2.00", "0.10", "–"] and rows[-1][0] == "**median**"
    header, rows = bench.impute_categorical(data)
    assert rows == [["penguins", "species, sex", "30 %", "0.500", "0.800", "**0.900**"]]
    header, rows = bench.impute_mnist_grid(data)
    assert rows == [["quadrant", "0.2000", "timeout", "**–**"]]
    header, rows = bench.impute_mnist_grid({"grid": data["grid"]})  # a run without MNIST
    assert rows == [["not measured in this run", "–"]]

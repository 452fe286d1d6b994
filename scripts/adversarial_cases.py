"""The cases of ``scripts/adversarial.py``: what each one does to aekit, and what must come back.

A case is a :class:`Case`: a kind (the table row it counts in), a name, the interface
(``python`` or ``cli``) and ``run(ctx)``, which builds its input in a folder of its own and
returns an :class:`Outcome` through :func:`python_call` or :func:`cli_call`. The tables of
tampered fields and replaced files are the tests' own (``tests/helpers.py``); the three
saved estimators (a model, a detector and an imputer fitted on one named DataFrame) and their
answers on it are built once per worker process (:class:`Context`).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import traceback
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.helpers import (
    DETECTOR_TAMPERED,
    FAST,
    IMPUTER_TAMPERED,
    IMPUTER_TAMPERED_TEXT,
    REPLACEMENTS,
    TAMPERED,
    TAMPERED_TEXT,
    npy_header_bytes,
)

COLUMNS = ["a", "b", "c", "d", "e", "f"]
BOMB_LIMIT = 256 << 20  # AEKIT_MAX_INPUT_BYTES while a bomb case runs: the big ones are 1 GiB


@dataclass
class Outcome:
    """How a case ended: ``good`` (the right answer, or one clear line) or not, and why."""

    good: bool
    why: str


@dataclass
class Case:
    """One adversarial case: counted under ``kind``; ``run`` returns its outcome."""

    kind: str
    name: str
    interface: str
    run: Callable[[Context], Outcome]


class Context:
    """The saved estimators, their data and answers; a fresh folder for each case."""

    def __init__(self, root: Path) -> None:
        import aekit
        from aekit import Autoencoder, AutoencoderImputer, AutoencoderOutlierDetector

        self.root = root
        base = root / "base"
        base.mkdir()
        rng = np.random.default_rng(0)
        self.frame = pd.DataFrame(
            rng.normal(size=(120, 6)) * [1, 3, 10, 30, 100, 300], columns=COLUMNS
        )
        self.holes = self.frame.mask(rng.random(self.frame.shape) < 0.1)
        ae = Autoencoder(code_dim=2, hidden=(8,), **FAST)
        self.model = Autoencoder(code_dim=2, hidden=(8,), **FAST).fit(self.frame)
        self.detector = AutoencoderOutlierDetector(ae, n_estimators=2, contamination=0.1)
        self.detector.fit(self.frame)
        self.imputer = AutoencoderImputer(ae, n_estimators=2).fit(self.holes)
        self.folders = {
            "model": self.model.save(base / "model"),
            "detector": self.detector.save(base / "detector"),
            "imputer": self.imputer.save(base / "imputer"),
        }
        self.csv = base / "ok.csv"
        self.frame.to_csv(self.csv, index=False)
        self.answers = {  # what each saved estimator gives on the frame (the holes for imputing)
            "model": self.model.transform(self.frame),
            "detector": self.detector.score_samples(self.frame),
            "imputer": self.imputer.transform(self.holes),
        }
        self.cli_answers = {"model": aekit.load(self.folders["model"]).transform(self.frame)}
        self.cli_outputs = {}  # (command, kind): its output on the intact folder
        for command in ("encode", "score"):
            for kind, folder in self.folders.items():
                out = base / f"{command}-{kind}.npy"
                _quiet_main([command, folder, self.csv, "-o", out])
                self.cli_outputs[command, kind] = np.load(out)
        self.onnx = base / "d.onnx"
        from aekit.export import to_onnx

        to_onnx(self.detector, self.onnx)
        self._n = 0

    def case_dir(self) -> Path:
        """A new empty folder for one case."""
        self._n += 1
        folder = self.root / f"case{self._n}"
        folder.mkdir()
        return folder

    def copy(self, kind: str, where: Path) -> Path:
        """A copy of the saved ``kind`` folder in ``where`` (links copied as links)."""
        return Path(shutil.copytree(self.folders[kind], where / kind, symlinks=True))

    def estimator(self, kind: str) -> Any:
        """The fitted ``kind`` estimator (not loaded: the one that was saved)."""
        return {"model": self.model, "detector": self.detector, "imputer": self.imputer}[kind]


def _quiet_main(argv: list[Any]) -> int:
    from aekit.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main([str(a) for a in argv])


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _one_line(message: str) -> bool:
    return bool(message) and "\n" not in message.strip() and len(message) < 2000


def python_call(
    call: Callable[[], Any],
    check: Callable[[Any], str | None] | None,
    folder: Path,
    new_files: str | None = None,
) -> Outcome:
    """Run ``call`` and say how it ended.

    A one-line AekitError is good; so is a result ``check`` finds right (None: any result
    is wrong, the case must be refused). Anything else is bad, and so is a file left in
    ``folder`` that was not there before (but those starting ``new_files``).
    """
    from aekit import AekitError

    before = _listing(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except AekitError as exc:
        outcome = Outcome(_one_line(str(exc)), f"refused: {type(exc).__name__}: {exc}"[:300])
    except Exception as exc:  # the bad outcome this script looks for
        lines = traceback.format_exception_only(type(exc), exc)
        return Outcome(False, f"traceback: {''.join(lines).strip()}"[:300])
    else:
        wrong = "accepted, must be refused" if check is None else check(result)
        outcome = Outcome(wrong is None, wrong or "right answer")
    left = {p for p in _listing(folder) - before if not (new_files and p.startswith(new_files))}
    return Outcome(False, f"left {sorted(left)[:3]}") if left else outcome


def cli_call(
    argv: list[Any], folder: Path, out: Path | None, check: Callable[[Path], str | None] | None
) -> Outcome:
    """Run ``aekit ARGV`` (in this process) and say how it ended.

    Good: exit 0 with a right output (``check``), or a non-zero exit with one ``aekit:
    error:`` line on stderr and no output file.
    """
    from aekit.cli import main

    before = _listing(folder)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:
        return Outcome(False, f"traceback: {type(exc).__name__}: {exc}"[:300])
    err = stderr.getvalue()
    if "Traceback" in err:
        return Outcome(False, f"traceback on stderr: {err.strip().splitlines()[-1]}"[:300])
    made = out.name if out is not None and code == 0 else None  # the output, and inside it
    left = {p for p in _listing(folder) - before if not made or p.split("/")[0] != made}
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        one = len(lines) == 1 and lines[0].startswith("aekit: error: ")
        if left:
            return Outcome(False, f"exit {code}, left {sorted(left)[:3]}")
        return Outcome(one, f"exit {code}: {err.strip()}"[:300])
    if left:
        return Outcome(False, f"left {sorted(left)[:3]}")
    wrong = "exit 0, must be refused" if check is None else check(out)
    return Outcome(wrong is None, wrong or "right answer")


def _same(expected: Any) -> Callable[[Any], str | None]:
    def check(result: Any) -> str | None:
        if isinstance(expected, pd.DataFrame):
            same = isinstance(result, pd.DataFrame) and result.equals(expected)
        else:
            same = np.array_equal(np.asarray(result), np.asarray(expected), equal_nan=True)
        return None if same else "wrong answer"

    return check


def _same_file(expected: Any) -> Callable[[Path], str | None]:
    return lambda out: _same(expected)(np.load(out))


def _use(kind: str, estimator: Any, ctx: Context) -> Any:
    if kind == "imputer":
        return estimator.transform(ctx.holes)
    if kind == "detector":
        return estimator.score_samples(ctx.frame)
    return estimator.transform(ctx.frame)


# -- tampered JSON fields ------------------------------------------------------------------
def _tamper(kind: str, file: str, edit: Callable[[dict], None] | None, text: tuple | None):
    def run(ctx: Context, interface: str) -> Outcome:
        import aekit

        where = ctx.case_dir()
        folder = ctx.copy(kind, where)
        meta = json.loads((folder / file).read_text())
        if edit is not None:
            edit(meta)
            raw = json.dumps(meta)
        else:  # (section, value text): a number JSON can spell but no folder can hold
            section, value = text
            if section == "model":
                meta["model"]["code_dim"] = 123456789
            elif section == "threshold":
                meta["threshold"] = 123456789.5
            else:  # low, high: one column's bound
                meta[section][0] = 123456789.5
            raw = json.dumps(meta).replace(
                "123456789" if section == "model" else "123456789.5", value
            )
        (folder / file).write_text(raw)
        if interface == "python":
            return python_call(
                lambda: _use(kind, aekit.load(folder), ctx), _same(ctx.answers[kind]), where
            )
        out = where / "out.npy"
        argv = ["score" if kind != "model" else "encode", folder, ctx.csv, "-o", out]
        check = _same_file(ctx.cli_answers["model"]) if kind == "model" else (lambda o: None)
        return cli_call(argv, where, out, check)

    return run


def tamper_cases() -> list[Case]:
    """Tampered JSON fields of the three folders, through Python and the command line."""
    tables = [("model", "config.json", name, edit, None) for name, (edit, _) in TAMPERED.items()]
    tables += [
        ("model", "config.json", name, None, ("model", value))
        for name, (value, _) in TAMPERED_TEXT.items()
    ]
    tables += [
        ("detector", "detector.json", name, edit, None)
        for name, (edit, _) in DETECTOR_TAMPERED.items()
    ]
    tables += [
        ("detector", "detector.json", f"threshold-{t}", None, ("threshold", t))
        for t in ("NaN", "Infinity", "-Infinity")
    ]
    tables += [
        ("imputer", "imputer.json", name, edit, None)
        for name, (edit, _) in IMPUTER_TAMPERED.items()
    ]
    tables += [
        ("imputer", "imputer.json", name, None, (key, value))
        for name, (key, value, _) in IMPUTER_TAMPERED_TEXT.items()
    ]
    cases = []
    for kind, file, name, edit, text in tables:
        run = _tamper(kind, file, edit, text)
        for interface in ("python", "cli"):
            cases.append(
                Case(f"tampered {file}", f"{kind}:{name}", interface,
                     lambda ctx, run=run, i=interface: run(ctx, i))
            )  # fmt: skip
    return cases


# -- files that are not regular files, members linked out of the folder ----------------------
MEMBER_FILES = {
    "model": ["config.json", "weights.safetensors"],
    "detector": ["detector.json", "detector.safetensors", "members/1/weights.safetensors"],
    "imputer": ["imputer.json", "members/1/config.json"],
}


def _replaced(kind: str, file: str, replacement: str, interface: str):
    def run(ctx: Context) -> Outcome:
        import aekit

        where = ctx.case_dir()
        folder = ctx.copy(kind, where)
        REPLACEMENTS[replacement][0](folder / file)
        if interface == "python":
            return python_call(lambda: aekit.load(folder), None, where)
        return _cli_like_intact(ctx, kind, folder, where)

    return run


def _linked_out(kind: str, link: str, interface: str):
    def run(ctx: Context) -> Outcome:
        import aekit

        where = ctx.case_dir()
        folder = ctx.copy(kind, where)
        outside = where / "outside"
        shutil.move(folder / link, outside)  # a whole, valid folder: still not followed
        (folder / link).symlink_to(outside, target_is_directory=True)
        if interface == "python":
            return python_call(lambda: aekit.load(folder), None, where)
        return _cli_like_intact(ctx, kind, folder, where)

    return run


def _cli_like_intact(ctx: Context, kind: str, folder: Path, where: Path) -> Outcome:
    """Run ``aekit encode`` (a model) or ``aekit score`` (a detector, an imputer) on ``folder``.

    Good: refused in one line, or the very output of the intact folder (a command that
    applies a folder's first autoencoder alone reads no other member's files).
    """
    command = "encode" if kind == "model" else "score"
    out = where / "out.npy"
    return cli_call([command, folder, ctx.csv, "-o", out], where, out,
                    _same_file(ctx.cli_outputs[command, kind]))  # fmt: skip


def file_cases() -> list[Case]:
    """Saved files replaced by links, FIFOs, devices and folders; members linked out."""
    cases = []
    for kind, files in MEMBER_FILES.items():
        for file in files:
            for replacement in REPLACEMENTS:
                for interface in ("python", "cli"):
                    run = _replaced(kind, file, replacement, interface)
                    cases.append(Case("not a regular file", f"{kind}:{file}:{replacement}",
                                      interface, run))  # fmt: skip
    for kind in ("detector", "imputer"):
        for link in ("members", "members/1"):
            for interface in ("python", "cli"):
                run = _linked_out(kind, link, interface)
                cases.append(Case("member linked out", f"{kind}:{link}", interface, run))
    return cases


# -- bombs: input files whose headers claim more than they hold, or unpack to 1 GiB ----------
def _zeros_deflated(n: int) -> Callable[[Any], None]:
    def write(handle: Any) -> None:
        block = bytes(1 << 24)
        for _ in range(n >> 24):
            handle.write(block)

    return write


def _npz_bomb(path: Path) -> None:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("X.npy", "w", force_zip64=True) as handle,
    ):
        handle.write(npy_header_bytes((1 << 17, 1 << 10)))  # 1 GiB of float64 zeros
        _zeros_deflated(1 << 30)(handle)


def _sparse_npz_bomb(path: Path) -> None:
    import scipy.sparse as sp

    n = 1 << 22  # 4 M ones in one row: 48 MiB unpacked, over its 16 MiB limit
    indptr = np.array([0, n], dtype=np.int32)
    rows = sp.csr_array((np.ones(n), np.arange(n, dtype=np.int32), indptr), shape=(1, n))
    sp.save_npz(path, rows, compressed=True)


def _idx_bomb(path: Path) -> None:
    header = bytes([0, 0, 0x08, 3]) + b"".join(k.to_bytes(4, "big") for k in (1 << 18, 64, 64))
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header)
        _zeros_deflated(1 << 30)(handle)


def _text_file(text: str, gz: bool = False) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = text.encode()
        path.write_bytes(gzip.compress(data) if gz else data)

    return write


MTX = "%%MatrixMarket matrix coordinate real general\n{}\n1 1 1.5\n"
BOMBS = {  # file name: how to write it, AEKIT_MAX_INPUT_BYTES while it is read
    "npz-1GiB.npz": (_npz_bomb, BOMB_LIMIT),
    "sparse-npz.npz": (_sparse_npz_bomb, 16 << 20),
    "idx-1GiB-idx3-ubyte.gz": (_idx_bomb, BOMB_LIMIT),
    "npz-claims.npz": (
        lambda p: _zip_member(p, npy_header_bytes((10**6, 10**6)) + bytes(64)),
        BOMB_LIMIT,
    ),
    "npy-claims.npy": (
        lambda p: p.write_bytes(npy_header_bytes((2**62, 2**62)) + bytes(64)),
        BOMB_LIMIT,
    ),
    "npy-short.npy": (lambda p: p.write_bytes(npy_header_bytes((10, 10)) + bytes(64)), BOMB_LIMIT),
    "mtx-entries.mtx": (_text_file(MTX.format("10 10 1000000000000")), BOMB_LIMIT),
    "mtx-wide.mtx": (_text_file(MTX.format("1000000000000 1000000000000 1")), BOMB_LIMIT),
    "mtx-gz.mtx.gz": (_text_file(MTX.format("10 10 1000000000000"), gz=True), BOMB_LIMIT),
}
BOMBS_ENV = "AEKIT_ADVERSARIAL_BOMBS"  # the folder build_bombs wrote them to


def _zip_member(path: Path, raw: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", raw)


def build_bombs(folder: Path) -> None:
    """Write every bomb file into ``folder``, once, before the bomb cases run.

    Building a 1 GiB deflate stream takes seconds and memory that are no part of what
    aekit does.
    """
    for name, (write, _) in BOMBS.items():
        write(folder / name)


def _bomb(name: str, how: str):
    def run(ctx: Context) -> Outcome:
        from aekit import Autoencoder

        where = ctx.case_dir()
        path = Path(os.environ[BOMBS_ENV]) / name
        os.environ["AEKIT_MAX_INPUT_BYTES"] = str(BOMBS[name][1])
        try:
            if how == "python":
                return python_call(
                    lambda: Autoencoder(**FAST, code_dim=2).fit(str(path)), None, where
                )
            out = where / ("m" if how == "fit" else "codes.npy")
            if how == "fit":
                argv = ["fit", path, "--code-dim", "2", "--epochs", "1", "-q", "-o", out]
            else:
                argv = ["encode", ctx.folders["model"], path, "-o", out]
            return cli_call(argv, where, out, None)
        finally:
            del os.environ["AEKIT_MAX_INPUT_BYTES"]

    return run


def bomb_cases() -> list[Case]:
    """Each bomb through ``fit`` in Python, ``aekit fit`` and ``aekit encode``."""
    return [
        Case("bomb", f"{name}:{how}", "python" if how == "python" else "cli", _bomb(name, how))
        for name in BOMBS
        for how in ("python", "fit", "encode")
    ]

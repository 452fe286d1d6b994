"""The walk of X through Autoencoder.fit: module-to-module calls, and which go up the import graph.

Import graph from the source (every import, inside functions too), cycles condensed (Tarjan);
a module's level = 1 + the highest level it imports. A call from module a into module b is a
move; it goes *up* when b's level is above a's (a lower module calling into a higher one, as
through a callback or an object handed down), *in a cycle* when a and b share a cycle.

    .venv/bin/python scripts/import_walk.py     # prints the figures as JSON
"""

import ast
import json
import sys
from pathlib import Path

import numpy as np

import aekit
from aekit import Autoencoder

root = Path(aekit.__file__).parent
files = {}
for p in root.rglob("*.py"):
    parts = list(p.relative_to(root.parent).with_suffix("").parts)
    files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p


def imports(name, p):
    """The aekit modules ``name`` (file ``p``) imports anywhere in its source."""
    pkg = name.split(".") if p.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for n in ast.walk(ast.parse(p.read_text())):
        if isinstance(n, ast.ImportFrom):
            t = (
                ".".join(pkg[: len(pkg) - n.level + 1] + ([n.module] if n.module else []))
                if n.level
                else (n.module or "")
            )
            for a in n.names:
                out.add(f"{t}.{a.name}" if f"{t}.{a.name}" in files else t)
    return {m for m in out if m in files and m != name}


g = {m: imports(m, p) for m, p in files.items()}
sys.setrecursionlimit(10000)
index, low, stack, on, comp = {}, {}, [], set(), {}


def visit(v):
    """Tarjan's step: number ``v``, visit its imports, close its cycle."""
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in sorted(g[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        members = []
        while True:
            w = stack.pop()
            on.discard(w)
            members.append(w)
            if w == v:
                break
        for w in members:
            comp[w] = v


for v in sorted(g):
    if v not in index:
        visit(v)
cg = {}
for v, ds in g.items():
    cg.setdefault(comp[v], set()).update(comp[d] for d in ds if comp[d] != comp[v])
level = {}


def lv(c):
    """The level of a condensed module: 1 + the highest level it imports."""
    if c not in level:
        level[c] = 1 + max((lv(d) for d in cg.get(c, ())), default=-1)
    return level[c]


moves = []


def prof(frame, event, arg):
    """Record a call from one aekit module into another."""
    if event == "call" and frame.f_back is not None:
        a, b = frame.f_back.f_globals.get("__name__", ""), frame.f_globals.get("__name__", "")
        if a in files and b in files and a != b:
            moves.append((a, b))


X = np.random.default_rng(0).normal(size=(300, 12)).astype(np.float32)
est = Autoencoder(code_dim=3, epochs=3, random_state=0, threads=1)
sys.setprofile(prof)
est.fit(X)
sys.setprofile(None)
edges = sorted(set(moves))
up = [f"{a} -> {b}" for a, b in edges if comp[a] != comp[b] and lv(comp[b]) > lv(comp[a])]
cyc = [f"{a} -> {b}" for a, b in edges if comp[a] == comp[b]]
print(
    json.dumps(
        {
            "modules_visited": len({m for e in edges for m in e}),
            "distinct_moves": len(edges),
            "moves_up": len(up),
            "moves_within_a_cycle": len(cyc),
            "import_graph_levels": max(lv(c) for c in cg) + 1,
            "modules_in_cycles": sum(1 for v in g if sum(1 for w in g if comp[w] == comp[v]) > 1),
            "up": up,
            "within_cycles": cyc,
        },
        indent=1,
    )
)

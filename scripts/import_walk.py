"""The walk of X through Autoencoder.fit: module-to-module calls, and which go up the import graph.

Import graph from the source (every import, inside functions too), cycles condensed (Tarjan's
algorithm, ``tests/import_graph.py``); a module's level = 1 + the highest level it imports. A
call from module a into module b is a move; it goes *up* when b's level is above a's (a lower
module calling into a higher one, as through a callback or an object handed down), *in a
cycle* when a and b share a cycle.

    .venv/bin/python scripts/import_walk.py     # prints the figures as JSON
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aekit import Autoencoder
from tests.import_graph import cycles, import_graph

g = import_graph()
files = set(g)
comp = {v: v for v in g}  # each module its own component, a cycle's members share its first
for members in cycles(g):
    comp.update(dict.fromkeys(members, members[0]))
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

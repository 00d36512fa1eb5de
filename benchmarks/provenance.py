"""Provenance benchmark: ingest a synthetic PROV graph, then trace lineage from its leaves.

The graph is what many runs of a pipeline leave behind: ``--runs`` runs of a
``--steps``-step chain; each step uses the previous step's output and a parameter,
generates one output and is associated with the engine; each run starts from the final
output of a randomly chosen earlier run (so lineage crosses runs, as it does in a digital
twin that reprocesses its own products). Every run is stored as one document.

Measured in the same run against an in-memory baseline — the ``prov`` library holding
the same records, turned into a networkx graph (``prov.graph.prov_to_graph``) and walked
with ``networkx.descendants`` — it reports the ingest rate (records per second; a record
is a relation or an element declaration) and p50/p99 of an unbounded upstream lineage
query from a random leaf. Targets on SQLite: ingest ≥ 20,000 records/s, lineage p99 ≤
100 ms. Usage::

    python benchmarks/provenance.py [--runs 5000 --steps 50] [--queries 200]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_runs(runs: int, steps: int, seed: int = 7) -> list:
    """One ProvGraph per run."""
    from twinengine.provenance.graph import ProvGraph

    rng = random.Random(seed)
    graphs = []
    for r in range(runs):
        g = ProvGraph()
        g.namespaces["ex"] = "http://example.org/"
        engine = g.agent("ex:engine", "engine", prov_type="prov:SoftwareAgent")
        previous = f"ex:out-{rng.randrange(r)}-{steps - 1}" if r else "ex:raw"
        g.entity(previous)
        for s in range(steps):
            act = g.activity(f"ex:step-{r}-{s}", f"step {s}")
            param = g.entity(f"ex:param-{s % 10}", prov_value=s % 10)
            out = g.entity(f"ex:out-{r}-{s}")
            g.relate("used", act, previous)
            g.relate("used", act, param)
            g.relate("wasGeneratedBy", out, act)
            g.relate("wasAssociatedWith", act, engine)
            previous = out
        graphs.append(g)
    return graphs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_twin(graphs: list, leaves: list[str], home: Path) -> dict:
    os.environ["TWIN_HOME"] = str(home)
    import twinengine.core
    from twinengine.provenance import ProvStore

    twinengine.core.reset()
    store = ProvStore()
    relations = sum(len(g.relations) + len(g.elements) for g in graphs)
    started = time.perf_counter()
    for i, g in enumerate(graphs):
        store.save(g, name=f"run-{i}")
    ingest = time.perf_counter() - started
    times = []
    sizes = []
    for leaf in leaves:
        t = time.perf_counter()
        found = store.lineage(leaf, "up")
        times.append(time.perf_counter() - t)
        sizes.append(len(found.elements))
    return {"ingest_s": ingest, "rate": relations / ingest, "times": times, "sizes": sizes}


def run_baseline(graphs: list, leaves: list[str]) -> dict:
    import networkx as nx
    from prov.graph import prov_to_graph

    from twinengine.provenance.convert import to_prov

    relations = sum(len(g.relations) + len(g.elements) for g in graphs)
    started = time.perf_counter()
    docs = [to_prov(g) for g in graphs]
    whole = docs[0]
    for doc in docs[1:]:
        whole.update(doc)
    graph = prov_to_graph(whole.flattened())
    ingest = time.perf_counter() - started
    by_id = {str(node.identifier): node for node in graph.nodes}
    times = []
    sizes = []
    for leaf in leaves:
        t = time.perf_counter()
        reached = nx.descendants(graph, by_id[leaf])  # prov_to_graph edges point upstream
        times.append(time.perf_counter() - t)
        sizes.append(len(reached) + 1)
    return {"ingest_s": ingest, "rate": relations / ingest, "times": times, "sizes": sizes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print(f"building {args.runs} runs x {args.steps} steps …", flush=True)
    graphs = build_runs(args.runs, args.steps)
    gc.freeze()  # the generated graphs live on: keep the collector from rescanning them
    relations = sum(len(g.relations) for g in graphs)
    records = relations + sum(len(g.elements) for g in graphs)
    rng = random.Random(11)
    leaves = [f"ex:out-{rng.randrange(args.runs)}-{args.steps - 1}" for _ in range(args.queries)]
    print(
        f"{relations:,} relations ({records:,} records with the element declarations), "
        f"{args.queries} lineage queries",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="twin-prov-bench-") as tmp:
        twin = run_twin(graphs, leaves, Path(tmp))
    results = {"TwinEngine (SQLite)": twin}
    if not args.no_baseline:
        results["prov + networkx (memory)"] = run_baseline(graphs, leaves)
    print()
    print(f"{'store':28} {'ingest':>9} {'records/s':>11} {'p50':>9} {'p99':>9} {'nodes':>7}")
    for name, r in results.items():
        p50 = statistics.median(r["times"]) * 1000
        p99 = percentile(r["times"], 0.99) * 1000
        print(
            f"{name:28} {r['ingest_s']:8.1f}s {r['rate']:11,.0f} {p50:7.1f}ms {p99:7.1f}ms "
            f"{statistics.median(r['sizes']):7.0f}"
        )
    if twin["sizes"] and "prov + networkx (memory)" in results:
        base = results["prov + networkx (memory)"]
        assert twin["sizes"] == base["sizes"], "both stores must find the same lineage"
    print("\ntargets on SQLite: ingest >= 20,000 records/s, lineage p99 <= 100 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time and score two source trees of sklearn-icon against each other, interleaved.

A refactor should change neither results nor speed. This script runs the
IConEmbedding cases of ``bench_embedding.py --no-mnist`` and the
IConClustering cases of ``bench_clustering.py --no-mnist`` (digits) from two
checkouts, each round in a fresh subprocess per tree with ``PYTHONPATH``
pointing at that tree, the two trees taking turns to go first so that the
machine's drift reaches both alike. Round ``r`` fits the clusterings with
``random_state=r``, so the clustering figures are over seeds ``0..rounds-1``.

Usage::

    git worktree add /tmp/old <commit>
    python benchmarks/bench_versions.py /tmp/old . --rounds 5
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CASES = {
    "IConEmbedding (defaults)": ("embedding", {}),
    "IConEmbedding (max_iter=1000)": ("embedding", {"max_iter": 1000}),
    "IConClustering (defaults)": ("clustering", {}),
    "IConClustering (weight_decay=1.0)": ("clustering", {"weight_decay": 1.0}),
}


def run_cases(seed):
    """Fit every case on digits in this process; print one JSON line of results."""
    import time

    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from sklearn_icon import IConClustering, IConEmbedding
    from sklearn_icon.metrics import clustering_accuracy

    X, y = load_digits(return_X_y=True)
    results = {}
    for name, (kind, params) in CASES.items():
        if kind == "embedding":
            estimator = IConEmbedding(random_state=0, **params)
        else:
            estimator = IConClustering(10, random_state=seed, **params)
        tic = time.perf_counter()
        output = estimator.fit_transform(X) if kind == "embedding" else estimator.fit_predict(X)
        seconds = time.perf_counter() - tic
        if kind == "embedding":
            accuracy = cross_val_score(KNeighborsClassifier(n_neighbors=10), output, y, cv=5).mean()
            quality = {"KL": float(estimator.kl_divergence_), "10-NN": float(accuracy)}
        else:
            quality = {"accuracy": float(clustering_accuracy(y, output))}
        results[name] = {"seconds": seconds, **quality}
    print(json.dumps(results))


def run_tree(tree, seed):
    """Run :func:`run_cases` with ``tree`` first on the import path; return its results."""
    environment = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    command = [sys.executable, os.path.abspath(__file__), "--worker", str(seed)]
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    """Run both trees in alternating order for ``--rounds`` rounds; print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="two source trees: the old, then the new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        run_cases(args.worker)
        return
    if len(args.trees) != 2:
        parser.error("give two source trees: the old, then the new")

    runs = {tree: [] for tree in args.trees}
    for round_index in range(args.rounds):
        order = args.trees if round_index % 2 == 0 else args.trees[::-1]
        for tree in order:
            runs[tree].append(run_tree(tree, seed=round_index))
            print(f"round {round_index} {tree} done", file=sys.stderr, flush=True)

    print("| case | tree | time median (s) | time range (s) | quality (mean over rounds; min) |")
    print("|" + "---|" * 5)
    for name in CASES:
        for tree in args.trees:
            records = [run[name] for run in runs[tree]]
            seconds = [record["seconds"] for record in records]
            keys = [key for key in records[0] if key != "seconds"]
            quality = ", ".join(
                f"{key} {np.mean([r[key] for r in records]):.4f}; {min(r[key] for r in records):.4f}" for key in keys
            )
            print(
                f"| {name} | {tree} | {np.median(seconds):.2f} | {min(seconds):.2f}-{max(seconds):.2f} | {quality} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

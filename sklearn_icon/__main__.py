"""``python -m sklearn_icon``: embed, cluster and classify, beside scikit-learn's equivalents."""

import argparse
import time
from pathlib import Path

import numpy as np


def load_table(path):
    """A 2-D float array from a ``.npy`` or ``.csv`` file (comma-separated, no header)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".csv":
        return np.loadtxt(path, delimiter=",", ndmin=2)
    raise ValueError(f"{path}: expected a .npy or .csv file.")


def _timed(label, function):
    print(f"  {label} ...", end="", flush=True)
    tic = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - tic
    print(f" {seconds:.1f} s", flush=True)
    return result, seconds


def _print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


def save_scatter(embedding, labels, path):
    """Write a PNG of a 2-D embedding coloured by ``labels``; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(7, 7), dpi=100)
    axes.scatter(embedding[:, 0], embedding[:, 1], c=labels, cmap="tab10", s=4)
    axes.set_title("IConEmbedding, coloured by IConClustering")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return True


def main(argv=None):
    """Embed, cluster and classify a data set with sklearn-icon and with scikit-learn.

    With no arguments, scikit-learn's bundled digits. Prints, for each task,
    our figures beside those of scikit-learn's equivalent measured in the
    same run (TSNE; KMeans and SpectralClustering; LogisticRegression), and
    writes a PNG of the embedding coloured by the clusters.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments; ``sys.argv`` when None.
    """
    from sklearn.cluster import KMeans, SpectralClustering
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.metrics import accuracy_score, adjusted_rand_score
    from sklearn.model_selection import cross_val_score, train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_icon import IConClassifier, IConClustering, IConEmbedding
    from sklearn_icon.metrics import clustering_accuracy

    parser = argparse.ArgumentParser(prog="python -m sklearn_icon", description=main.__doc__.splitlines()[0])
    parser.add_argument("--data", help="features as .npy or .csv (rows = samples); default: sklearn's digits")
    parser.add_argument("--labels", help="class labels as .npy or .csv, one per row of --data (optional)")
    parser.add_argument("--n-clusters", type=int, default=None, help="default: number of classes, else 10")
    parser.add_argument("--output", default="sklearn_icon_embedding.png", help="PNG path")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-compare", action="store_true", help="skip scikit-learn's methods")
    args = parser.parse_args(argv)

    if args.data is None:
        X, y = load_digits(return_X_y=True)
        name = "digits"
    else:
        X = load_table(args.data)
        y = None if args.labels is None else load_table(args.labels).ravel()
        name = args.data
    n_clusters = args.n_clusters or (len(np.unique(y)) if y is not None else 10)
    compare = not args.no_compare
    print(f"{name}: {X.shape[0]} samples, {X.shape[1]} features")

    print("\nEmbedding")
    embedders = [("IConEmbedding", IConEmbedding(random_state=0, device=args.device))]
    if compare:
        embedders.append(("sklearn TSNE", TSNE(random_state=0)))
    rows, ours = [], None
    for label, model in embedders:
        embedding, seconds = _timed(label, lambda: model.fit_transform(X))
        ours = embedding if ours is None else ours
        row = [label, f"{seconds:.1f}", f"{trustworthiness(X, embedding, n_neighbors=10):.4f}", f"{model.kl_divergence_:.4f}"]
        if y is not None:
            row.append(f"{cross_val_score(KNeighborsClassifier(10), embedding, y, cv=5).mean():.4f}")
        rows.append(row)
    header = ["method", "time (s)", "trust(10)", "KL"] + (["10-NN acc"] if y is not None else [])
    _print_table("Embedding (2-D)", header, rows)

    print("\nClustering")
    clusterers = [("IConClustering", IConClustering(n_clusters, random_state=0, device=args.device))]
    if compare:
        clusterers.append(("KMeans", KMeans(n_clusters, n_init=10, random_state=0)))
        clusterers.append(
            ("SpectralClustering", SpectralClustering(n_clusters, affinity="nearest_neighbors", random_state=0))
        )
    rows, cluster_labels = [], None
    for label, model in clusterers:
        labels, seconds = _timed(label, lambda: model.fit_predict(X))
        cluster_labels = labels if cluster_labels is None else cluster_labels
        row = [label, f"{seconds:.1f}"]
        if y is not None:
            row += [f"{clustering_accuracy(y, labels):.4f}", f"{adjusted_rand_score(y, labels):.4f}"]
        rows.append(row)
    header = ["method", "time (s)"] + (["accuracy", "ARI"] if y is not None else [])
    _print_table(f"Clustering ({n_clusters} clusters; accuracy is Hungarian)", header, rows)

    if y is not None:
        print("\nClassification")
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
        classifiers = [("IConClassifier", IConClassifier(random_state=0, device=args.device))]
        if compare:
            classifiers.append(("LogisticRegression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))))
        rows = []
        for label, model in classifiers:
            _, seconds = _timed(label, lambda: model.fit(X_train, y_train))
            rows.append([label, f"{seconds:.2f}", f"{accuracy_score(y_test, model.predict(X_test)):.4f}"])
        _print_table("Classification (80/20 stratified split)", ["method", "time (s)", "test accuracy"], rows)

    if save_scatter(ours, cluster_labels, args.output):
        print(f"\nWrote {args.output}")
    else:
        print("\nNo PNG written: matplotlib is not installed (pip install matplotlib).")


if __name__ == "__main__":
    main()

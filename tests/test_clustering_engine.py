"""The clustering engine: convergence test, initialisation from centres, determinism."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from sklearn_icon import IConClustering

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=240, centers=4, cluster_std=0.8, random_state=3)


def test_a_converged_fit_stops_before_max_iter_and_does_not_warn(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = IConClustering(n_clusters=4, n_init=1, max_iter=2000, tol=1e-3, **CPU).fit(X)
    assert model.n_iter_ < 2000
    # The stopping checkpoint improved on the one before by less than tol of its size.
    curve = model.loss_curve_[:-1]
    assert curve[-2] - curve[-1] < 1e-3 * abs(curve[-2])
    assert np.all(curve[:-1][:-1] - curve[1:-1] >= 1e-3 * np.abs(curve[:-2]))


def test_an_unconverged_fit_warns_and_reports_max_iter(blobs):
    X, _ = blobs
    with pytest.warns(ConvergenceWarning, match="max_iter=20"):
        model = IConClustering(n_clusters=4, n_init=1, max_iter=20, tol=1e-12, **CPU).fit(X)
    assert model.n_iter_ == 20


def test_tol_zero_runs_max_iter_without_warning(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        # The max_iter warning is what tol=0 turns off (after 30 steps a
        # cluster may still be empty, which warns on its own).
        warnings.filterwarnings("error", message=".*stopped at max_iter", category=ConvergenceWarning)
        model = IConClustering(n_clusters=4, n_init=1, max_iter=30, tol=0.0, **CPU).fit(X)
    assert model.n_iter_ == 30


def _soft_kmeans(X, centres):
    squared = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    temperature = squared.min(1).mean()
    logits = -squared / temperature
    logits -= logits.max(1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_init_centres_start_at_their_soft_kmeans_assignment(blobs):
    X, _ = blobs
    centres = X[[0, 50, 100, 150]] + 0.3
    # A step too small to move the weights leaves the model at its start.
    model = IConClustering(
        n_clusters=4, init=centres, n_init=1, max_iter=1, tol=0.0, learning_rate=1e-12, **CPU
    ).fit(X)
    expected = _soft_kmeans(X, centres)
    kept = model._kept_clusters
    np.testing.assert_allclose(model.predict_proba(X), expected[:, kept] / expected[:, kept].sum(1, keepdims=True),
                               atol=1e-5)


def test_table_init_from_centres_is_the_soft_kmeans_logits(blobs):
    X, _ = blobs
    centres = X[[0, 50, 100, 150]]
    model = IConClustering(
        n_clusters=4, mapper="table", init=centres, n_init=1, max_iter=1, tol=0.0, learning_rate=1e-12, **CPU
    ).fit(X)
    np.testing.assert_array_equal(model.labels_, np.unique(_soft_kmeans(X, centres).argmax(1), return_inverse=True)[1])


def test_init_callable_and_kmeans_plusplus_and_explicit_centres_warn_once(blobs):
    X, _ = blobs
    calls = []

    def first_rows(data, n_clusters, random_state):
        calls.append((data.shape, n_clusters))
        return data[:n_clusters]

    IConClustering(n_clusters=4, init=first_rows, n_init=2, max_iter=10, **CPU).fit(X)
    assert calls == [(X.shape, 4), (X.shape, 4)]
    IConClustering(n_clusters=4, init="k-means++", n_init=1, max_iter=10, **CPU).fit(X)
    with pytest.warns(RuntimeWarning, match="only one init"):
        model = IConClustering(n_clusters=4, init=X[:4], n_init=3, max_iter=10, **CPU).fit(X)
    assert model.labels_.shape == (X.shape[0],)


@pytest.mark.parametrize(
    "init, params, message",
    [
        (np.zeros((3, 2)), {}, r"shape of the initial centres \(3, 2\)"),
        (np.full((4, 2), np.nan), {}, "NaN or infinity"),
        ("k-means++", {"mapper": "mlp"}, "exact for mapper='linear' or 'table' only"),
        (lambda X, k, random_state: X[:k], {"mapper": "mlp"}, "a callable"),
        (lambda X, k, random_state: X[:k, :1], {}, r"shape of the initial centres \(4, 1\)"),
    ],
)
def test_bad_init_is_refused_by_name(blobs, init, params, message):
    X, _ = blobs
    with pytest.raises(ValueError, match=message):
        IConClustering(n_clusters=4, init=init, n_init=1, max_iter=5, **CPU, **params).fit(X)


def test_init_needs_features(blobs):
    X, _ = blobs
    distances = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    with pytest.raises(ValueError, match="precomputed matrix has none"):
        IConClustering(n_clusters=4, metric="precomputed", init="k-means++", mapper="table", **CPU).fit(distances)


@pytest.mark.parametrize("init", ["random_weights", "random", "k-means++"])
def test_labels_are_deterministic_per_random_state(blobs, init):
    X, _ = blobs
    fits = [
        IConClustering(n_clusters=4, init=init, n_init=2, max_iter=40, device="cpu", random_state=seed).fit(X)
        for seed in (5, 5, 6)
    ]
    np.testing.assert_array_equal(fits[0].labels_, fits[1].labels_)
    assert fits[0].loss_ == fits[1].loss_
    assert fits[0].loss_ != fits[2].loss_
    # The global torch and numpy streams are left alone.
    state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global stream is what is checked)
    IConClustering(n_clusters=4, init=init, n_init=1, max_iter=5, **CPU).fit(X)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(numpy_state, np.random.get_state()[1])  # noqa: NPY002

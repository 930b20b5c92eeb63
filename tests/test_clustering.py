"""IConClustering as a user meets it: agreement with peers, prediction, errors, plumbing."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split

from sklearn_icon import IConClustering
from sklearn_icon.metrics import cluster_to_class_map, clustering_accuracy

FAST = dict(n_init=2, max_iter=150, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=300, centers=4, cluster_std=0.6, random_state=0)


def test_recovers_blobs_like_kmeans(blobs):
    X, y = blobs
    ours = IConClustering(n_clusters=4, **FAST).fit(X)
    theirs = KMeans(n_clusters=4, n_init=10, random_state=0).fit(X)
    assert adjusted_rand_score(y, ours.labels_) >= adjusted_rand_score(y, theirs.labels_) - 0.02
    assert ours.cluster_centers_.shape == (4, 2)
    for k in range(4):
        np.testing.assert_allclose(ours.cluster_centers_[k], X[ours.labels_ == k].mean(0))


def test_loss_prefers_graph_structure_over_kmeans_on_moons():
    # The objective scores the two moons below k-means' straight cut. (The
    # optimiser does not reliably reach that partition yet from a random
    # start; see the clustering issue's notes.)
    import torch

    from sklearn_icon._backend.affinities.graphs import knn_graph, normalize_rows, propagate
    from sklearn_icon._backend.objectives.cluster import cluster_loss

    X, y = make_moons(n_samples=300, noise=0.05, random_state=0)
    P = propagate(normalize_rows(knn_graph(torch.tensor(X), 10)), 1)

    def loss_of(labels):
        one_hot = torch.nn.functional.one_hot(torch.as_tensor(labels, dtype=torch.int64), 2).double()
        return float(cluster_loss(P, torch.log(0.999 * one_hot + 0.0005)))

    kmeans_labels = KMeans(2, n_init=10, random_state=0).fit_predict(X)
    assert adjusted_rand_score(y, kmeans_labels) < 0.6
    assert loss_of(y) < loss_of(kmeans_labels) - 0.1


@pytest.mark.parametrize(
    "params",
    [
        dict(learned="cluster_degree"),
        dict(alpha=0.3, alpha_q=0.1),
        dict(affinity="gaussian", perplexity=15),
        dict(propagation="reachable", n_walk_steps=2),
        dict(n_walk_steps=0),
        dict(mapper="table", n_walk_steps=3),
    ],
    ids=str,
)
def test_every_configuration_recovers_blobs(blobs, params):
    X, y = blobs
    labels = IConClustering(n_clusters=4, **{**FAST, **params}).fit_predict(X)
    assert adjusted_rand_score(y, labels) >= 0.9


def test_precomputed_affinity_graph(blobs):
    X, y = blobs
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(X, 10, include_self=False)
    labels = IConClustering(
        n_clusters=4, affinity="precomputed", mapper="table", n_walk_steps=3, **FAST
    ).fit_predict(graph)
    assert adjusted_rand_score(y, labels) >= 0.9


def test_labels_are_consecutive_and_match_predict(blobs):
    X, _ = blobs
    model = IConClustering(n_clusters=6, **FAST).fit(X)
    labels = np.unique(model.labels_)
    np.testing.assert_array_equal(labels, np.arange(labels.size))
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], labels.size)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(proba.argmax(1), model.labels_)


@pytest.mark.slow
def test_same_random_state_same_labels(blobs):
    X, _ = blobs
    for params in (dict(), dict(mapper="mlp", hidden_layer_sizes=(8,)), dict(mapper="table")):
        a = IConClustering(n_clusters=4, **FAST, **params).fit(X)
        b = IConClustering(n_clusters=4, **FAST, **params).fit(X)
        np.testing.assert_array_equal(a.labels_, b.labels_)
        assert a.loss_ == b.loss_


def test_n_init_keeps_the_lowest_loss(blobs, monkeypatch):
    """Every restart is screened; the two of lowest screening loss run on, and the lower of those is kept."""
    import sklearn_icon._backend.training as training_module

    X, _ = blobs
    calls = []
    train = training_module.train_assignments

    def recording(model, objective, **kwargs):
        result = train(model, objective, **kwargs)
        with torch.no_grad():
            labels = model(objective.inputs).argmax(1).numpy()
        calls.append((kwargs.get("resume") is not None, id(model), result.losses[-1], labels))
        return result

    monkeypatch.setattr(training_module, "train_assignments", recording)
    best = IConClustering(n_clusters=4, n_init=3, max_iter=400, tol=0.0, device="cpu", random_state=0).fit(X)
    screens = [call for call in calls if not call[0]]
    continued = [call for call in calls if call[0]]
    losses = [loss for _, _, loss, _ in screens]
    assert len(losses) == 3 and len(set(losses)) == 3, "the restarts must differ for the choice to matter"
    leaders = {screens[i][1] for i in np.argsort(losses)[:2]}
    assert len(continued) == 2 and {call[1] for call in continued} == leaders, "the two best screened run on"
    final_losses = [call[2] for call in continued]
    assert len(set(final_losses)) == 2
    kept = continued[int(np.argmin(final_losses))]
    assert best.loss_ == kept[2] == min(final_losses)
    assert best.n_iter_ == 400
    # The labels are the kept restart's (up to the renumbering of empty clusters).
    assert adjusted_rand_score(kept[3], best.labels_) == 1.0


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)


def held_out_accuracy(model, X_train, y_train, X_test, y_test):
    """Accuracy on new points, with clusters mapped to classes on the training part."""
    mapping = cluster_to_class_map(y_train, model.labels_)
    return np.mean([mapping.get(c, -1) == t for c, t in zip(model.predict(X_test), y_test)])


@pytest.mark.slow
def test_default_beats_kmeans_on_digits_and_on_held_out_points(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    model = IConClustering(n_clusters=10, random_state=0, device="cpu").fit(X_train)
    kmeans = KMeans(n_clusters=10, n_init=10, random_state=0).fit(X_train)
    train_accuracy = clustering_accuracy(y_train, model.labels_)
    assert train_accuracy >= 0.85
    assert train_accuracy >= clustering_accuracy(y_train, kmeans.labels_) + 0.05
    ours = held_out_accuracy(model, X_train, y_train, X_test, y_test)
    theirs = held_out_accuracy(kmeans, X_train, y_train, X_test, y_test)
    assert ours >= theirs + 0.02


@pytest.mark.slow
def test_weight_decay_closes_the_generalisation_gap(digits_split):
    """With weight_decay, predict on held-out points is within 0.03 of the training accuracy.

    Measured with weight_decay=1.0 on splits 0, 1, 2: gaps 0.004, 0.002,
    0.008 (without it 0.054, 0.000, 0.027); this is split 0.
    """
    X_train, X_test, y_train, y_test = digits_split
    model = IConClustering(n_clusters=10, weight_decay=1.0, random_state=0, device="cpu").fit(X_train)
    train_accuracy = clustering_accuracy(y_train, model.labels_)
    assert train_accuracy >= 0.84
    assert held_out_accuracy(model, X_train, y_train, X_test, y_test) >= train_accuracy - 0.03


def test_pickle_and_clone(blobs):
    X, _ = blobs
    model = IConClustering(n_clusters=4, **FAST).fit(X)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert clone(model).get_params() == model.get_params()


def test_table_mapper_has_no_predict():
    assert not hasattr(IConClustering(mapper="table"), "predict")
    assert hasattr(IConClustering(), "predict")


@pytest.mark.parametrize(
    "params, X, message",
    [
        (dict(n_clusters=20), np.random.RandomState(0).rand(10, 3), "n_clusters=20 must be at most n_samples=10"),
        (dict(n_neighbors=10), np.random.RandomState(0).rand(10, 3), "n_neighbors=10 must be less than n_samples=10"),
        (dict(affinity="precomputed"), np.ones((4, 3)), "square"),
        (dict(affinity="precomputed"), -np.ones((4, 4)), "non-negative"),
        (dict(affinity="precomputed", mapper="linear"), np.ones((4, 4)), "mapper='linear'"),
        (dict(learned="nope"), np.random.RandomState(0).rand(20, 3), "learned"),
        (dict(), np.full((20, 3), np.nan), "NaN"),
        (dict(divergence="reverse", affinity="gaussian"), sp.csr_matrix(np.eye(20)), "[Ss]parse.*toarray"),
    ],
)
def test_bad_input_gives_a_clear_error(params, X, message):
    with pytest.raises((ValueError, TypeError), match=message):
        IConClustering(**{**FAST, **params}).fit(X)


def _wide_digits():
    """Digits with 192 features, so that ``pca_components="auto"`` projects them."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    return np.hstack([X, X[:, ::-1], 0.5 * X]), y


def test_auto_components_are_pca_then_cluster():
    X, _ = _wide_digits()
    params = dict(n_clusters=10, random_state=0, max_iter=60, tol=0, device="cpu")
    projected = IConClustering(**params).fit(X)
    mean, axes = projected._feature_pca
    assert axes.shape == (192, 50)
    by_hand = IConClustering(pca_components=None, **params).fit((X - mean) @ axes)
    assert by_hand._feature_pca is None
    np.testing.assert_array_equal(projected.labels_, by_hand.labels_)
    np.testing.assert_array_equal(projected.predict(X[:50]), by_hand.predict((X[:50] - mean) @ axes))
    # Centres, inertia and distances stay in X's own space.
    assert projected.cluster_centers_.shape == (10, 192)
    np.testing.assert_allclose(
        projected.transform(X[:5]), np.linalg.norm(X[:5, None, :] - projected.cluster_centers_[None], axis=-1)
    )


@pytest.mark.parametrize(
    "params",
    [dict(init="k-means++"), dict(metric="cosine"), dict(affinity="rbf", gamma=1e-4), dict(pca_components=None)],
)
def test_auto_components_only_where_the_fit_can_work_in_them(params):
    X, _ = _wide_digits()
    model = IConClustering(n_clusters=5, random_state=0, max_iter=5, tol=0, device="cpu", **params).fit(X[:200])
    assert model._feature_pca is None
    assert model.predict(X[:3]).shape == (3,)


def test_explicit_components_name_what_stands_in_their_way():
    X, _ = _wide_digits()
    with pytest.raises(ValueError, match="pca_components=20 projects features, but init centres live in X's space"):
        IConClustering(n_clusters=5, init="k-means++", pca_components=20).fit(X[:200])
    with pytest.raises(ValueError, match=r"pca_components=500 must be at most min\(n_samples, n_features\) = 192"):
        IConClustering(n_clusters=5, pca_components=500).fit(X[:300])

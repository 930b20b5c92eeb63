"""IConClustering where KMeans was: inertia_, transform, score, n_init="auto", copy_x."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_icon import IConClustering

FAST = dict(n_neighbors=5, max_iter=200, tol=0.0, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=150, n_features=3, centers=3, cluster_std=0.6, random_state=0)


@pytest.fixture(scope="module")
def fitted(blobs):
    X, _ = blobs
    return IConClustering(n_clusters=3, **FAST).fit(X), X


def test_inertia_and_score_as_kmeans(fitted):
    model, X = fitted
    direct = sum(((X[model.labels_ == k] - X[model.labels_ == k].mean(0)) ** 2).sum() for k in range(3))
    assert model.inertia_ == pytest.approx(direct, rel=1e-10)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-10)
    assert model.score(X[:10] + 5.0) < model.score(X[:10])


def test_transform_is_the_distance_to_each_centre(fitted):
    model, X = fitted
    distances = model.transform(X[:7])
    direct = np.sqrt(((X[:7, None, :] - model.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(distances, direct, rtol=1e-10, atol=1e-10)
    assert (distances.argmin(1) == model.labels_[:7]).all()
    assert list(model.get_feature_names_out()) == ["iconclustering0", "iconclustering1", "iconclustering2"]
    np.testing.assert_allclose(IConClustering(n_clusters=3, **FAST).fit_transform(X), model.transform(X))


def test_transform_in_a_pipeline_with_pandas_output(fitted):
    pd = pytest.importorskip("pandas")
    _, X = fitted
    pipeline = make_pipeline(StandardScaler(), IConClustering(n_clusters=3, **FAST)).set_output(transform="pandas")
    frame = pipeline.fit_transform(pd.DataFrame(X, columns=["a", "b", "c"]))
    assert list(frame.columns) == ["iconclustering0", "iconclustering1", "iconclustering2"]


def test_n_init_auto_runs_one_restart_with_given_centres(blobs, monkeypatch):
    import sklearn_icon._clustering as clustering

    X, y = blobs
    seen = []
    restarts = clustering.train_restarts

    def spy(*args, n_init, **kwargs):
        seen.append(n_init)
        return restarts(*args, n_init=n_init, **kwargs)

    monkeypatch.setattr(clustering, "train_restarts", spy)
    centres = np.stack([X[y == k].mean(0) for k in range(3)])
    model = IConClustering(n_clusters=3, init=centres, n_init="auto", **FAST).fit(X)
    IConClustering(n_clusters=3, n_init="auto", **FAST).fit(X)
    IConClustering(n_clusters=3, init="k-means++", n_init="auto", **FAST).fit(X)
    assert seen == [1, clustering.DEFAULT_N_INIT, clustering.DEFAULT_N_INIT]
    assert adjusted_rand_score(y, model.labels_) > 0.9


@pytest.mark.parametrize("copy_x", [True, False])
def test_input_is_never_modified(blobs, copy_x):
    X, _ = blobs
    X = X.copy()
    before = X.copy()
    IConClustering(n_clusters=3, copy_x=copy_x, **FAST).fit(X)
    np.testing.assert_array_equal(X, before)


def test_fewer_clusters_than_asked_warns():
    X = np.repeat(np.array([[0.0, 0.0], [10.0, 10.0]]), 20, axis=0)
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        model = IConClustering(n_clusters=5, **FAST).fit(X)
    assert len(np.unique(model.labels_)) < 5


def test_precomputed_input_has_no_transform(blobs):
    from sklearn.metrics import pairwise_distances

    X, _ = blobs
    model = IConClustering(n_clusters=3, metric="precomputed", mapper="table", **FAST)
    assert not hasattr(model, "transform")
    model.fit(pairwise_distances(X))
    assert not hasattr(model, "inertia_")

"""IConClustering where KMeans was: inertia_, transform, score, n_init="auto", copy_x, sample_weight."""

import numpy as np
import pytest
import scipy.sparse as sp
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
    IConClustering(n_clusters=3, batch_size=32, **{**FAST, "max_iter": 5}).fit(X)
    assert seen == [1, clustering.DEFAULT_N_INIT, clustering.DEFAULT_N_INIT, clustering.MINIBATCH_N_INIT]
    assert IConClustering().n_init == "auto"
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


WEIGHTS = np.random.RandomState(0).randint(0, 4, 150)


def test_unit_weights_change_nothing(blobs):
    X, _ = blobs
    plain = IConClustering(n_clusters=3, **FAST).fit(X)
    weighted = IConClustering(n_clusters=3, **FAST).fit(X, sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(plain.labels_, weighted.labels_)
    assert weighted.loss_ == pytest.approx(plain.loss_, rel=1e-6)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix], ids=["dense", "sparse"])
@pytest.mark.parametrize("params", [dict(), dict(batch_size=64)], ids=["exact", "mini-batch"])
def test_weight_is_the_row_repeated(blobs, params, container):
    """sample_weight=k and k copies of the row give the same clusters (the k-NN graphs differ slightly)."""
    X, y = blobs
    kept = WEIGHTS > 0
    weighted = IConClustering(n_clusters=3, **{**FAST, **params}).fit(container(X), sample_weight=WEIGHTS)
    repeated = IConClustering(n_clusters=3, **{**FAST, **params}).fit(container(np.repeat(X, WEIGHTS, axis=0)))
    assert adjusted_rand_score(weighted.labels_[kept], repeated.predict(X[kept])) == 1.0
    assert adjusted_rand_score(y, weighted.labels_) == 1.0
    np.testing.assert_allclose(weighted.cluster_centers_[weighted.predict(repeated.cluster_centers_)],
                               repeated.cluster_centers_, rtol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)


def test_weights_reach_the_loss():
    """Weights move the boundary: heavy points of one blob pull the clusters' masses towards them."""
    X, _ = make_blobs(200, centers=[[0, 0], [3, 0]], cluster_std=1.0, random_state=0)
    weight = np.where(X[:, 0] < 1.5, 1.0, 0.0) + 1e-3
    fits = [IConClustering(n_clusters=2, **FAST).fit(X, sample_weight=w) for w in (None, weight)]
    assert fits[0].loss_ != pytest.approx(fits[1].loss_, rel=1e-3)
    # Centres are weighted means: the light points barely move them.
    heavy = X[:, 0] < 1.5
    for model in fits[1:]:
        for k, centre in enumerate(model.cluster_centers_):
            members = (model.labels_ == k) & heavy
            if members.any():
                np.testing.assert_allclose(
                    centre, np.average(X[model.labels_ == k], axis=0, weights=weight[model.labels_ == k])
                )


def test_weighted_inertia_and_score(fitted):
    model, X = fitted
    weight = np.linspace(0.5, 2.0, len(X))
    squared = ((X - model.cluster_centers_[model.predict(X)]) ** 2).sum(1)
    assert model.score(X, sample_weight=weight) == pytest.approx(-(squared @ weight), rel=1e-10)


@pytest.mark.parametrize(
    "params, weight, message",
    [
        (dict(alpha=0.2), np.ones(150), "sample_weight needs alpha=0.0"),
        (dict(), -np.ones(150), "[Nn]egative"),
        (dict(), np.zeros(150), "at least one non-zero"),
        (dict(), np.ones(10), "shape"),
    ],
)
def test_bad_weights_give_clear_errors(blobs, params, weight, message):
    X, _ = blobs
    with pytest.raises(ValueError, match=message):
        IConClustering(n_clusters=3, **{**FAST, **params}).fit(X, sample_weight=weight)

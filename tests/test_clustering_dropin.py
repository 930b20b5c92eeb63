"""IConClustering where SpectralClustering was: its affinities, their parameters, sparse graphs kept sparse."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, pairwise_distances
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.neighbors import kneighbors_graph

from sklearn_icon import IConClustering

CPU = dict(device="cpu", random_state=0)

X_BLOBS, Y_BLOBS = make_blobs(150, centers=3, cluster_std=0.6, random_state=1)
#: Non-negative features, for the kernels defined on them (chi2).
X_POSITIVE = X_BLOBS - X_BLOBS.min(axis=0)


def rbf_of_distance(x, y):
    """A user's own kernel, as SpectralClustering takes a callable affinity."""
    return np.exp(-0.1 * np.sum((x - y) ** 2))


def knn_affinity(X, n_neighbors=10):
    A = kneighbors_graph(X, n_neighbors, include_self=False)
    return 0.5 * (A + A.T)


@pytest.mark.parametrize(
    "affinity, params",
    [
        ("nearest_neighbors", {}),
        ("rbf", {}),
        ("rbf", dict(gamma=0.1)),
        ("laplacian", dict(gamma=0.1)),
        ("chi2", {}),
        (rbf_of_distance, {}),
        ("gaussian", dict(perplexity=10)),
    ],
)
def test_feature_affinities_cluster_blobs(affinity, params):
    model = IConClustering(n_clusters=3, affinity=affinity, **params, **CPU).fit(X_POSITIVE)
    assert adjusted_rand_score(Y_BLOBS, model.labels_) > 0.9


@pytest.mark.parametrize(
    "affinity, make_matrix",
    [
        ("precomputed", lambda X: knn_affinity(X)),
        ("precomputed", lambda X: knn_affinity(X).toarray()),
        ("precomputed", lambda X: pairwise_kernels(X, metric="rbf", gamma=0.1)),
        ("precomputed_nearest_neighbors", lambda X: pairwise_distances(X)),
        ("precomputed_nearest_neighbors", lambda X: kneighbors_graph(X, 15, mode="distance")),
    ],
    ids=["sparse-graph", "dense-graph", "dense-kernel", "dense-distances", "sparse-distances"],
)
def test_precomputed_matrices_cluster_blobs_without_further_parameters(affinity, make_matrix):
    """SpectralClustering's line, as it is: the mapper that fits a matrix is chosen for the user."""
    model = IConClustering(n_clusters=3, affinity=affinity, **CPU).fit(make_matrix(X_BLOBS))
    assert adjusted_rand_score(Y_BLOBS, model.labels_) > 0.9
    assert model.mapper_ is None
    assert not hasattr(model, "predict")
    # No feature space, so no centres in it, and no distances to them.
    assert not hasattr(model, "cluster_centers_") and not hasattr(model, "inertia_")
    assert not hasattr(model, "transform")


def test_affinity_matrix_is_what_spectral_clustering_keeps():
    knn = IConClustering(n_clusters=3, n_neighbors=8, **CPU).fit(X_BLOBS)
    expected = knn_affinity(X_BLOBS, 8)
    assert sp.issparse(knn.affinity_matrix_)
    np.testing.assert_allclose(knn.affinity_matrix_.toarray(), expected.toarray())

    kernel = IConClustering(n_clusters=3, affinity="poly", degree=2, coef0=0.5, gamma=0.3, max_iter=20, **CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel.fit(X_POSITIVE)
    expected = pairwise_kernels(X_POSITIVE, metric="poly", degree=2, coef0=0.5, gamma=0.3)
    np.testing.assert_allclose(kernel.affinity_matrix_, expected)

    A = knn_affinity(X_BLOBS)
    precomputed = IConClustering(n_clusters=3, affinity="precomputed", **CPU).fit(A)
    assert (precomputed.affinity_matrix_ != A).nnz == 0


def test_kernel_params_reach_a_callable_kernel():
    seen = {}

    def scaled(x, y, scale):
        seen["scale"] = scale
        return np.exp(-scale * np.sum((x - y) ** 2))

    model = IConClustering(n_clusters=3, affinity=scaled, kernel_params=dict(scale=0.1), **CPU).fit(X_BLOBS)
    assert seen["scale"] == 0.1
    assert adjusted_rand_score(Y_BLOBS, model.labels_) > 0.9


def test_gamma_changes_the_kernel():
    affinities = [
        IConClustering(n_clusters=3, affinity="rbf", gamma=gamma, max_iter=10, tol=0, **CPU).fit(X_BLOBS).affinity_matrix_
        for gamma in (0.1, 0.5)
    ]
    np.testing.assert_allclose(affinities[1], affinities[0] ** 5, rtol=1e-10, atol=1e-300)


def test_n_jobs_sets_the_threads_of_the_fit():
    threads = []

    def recording(x, y):
        threads.append(torch.get_num_threads())
        return rbf_of_distance(x, y)

    before = torch.get_num_threads()
    IConClustering(n_clusters=3, affinity=recording, n_jobs=1, max_iter=10, tol=0, **CPU).fit(X_BLOBS[:30])
    assert set(threads) == {1}
    assert torch.get_num_threads() == before


def test_sparse_graph_is_never_densified(monkeypatch):
    """A sparse affinity stays sparse through supervision, walks, loss and attributes."""
    X, y = make_blobs(3000, centers=4, cluster_std=0.5, random_state=0)
    A = knn_affinity(X, 10).tocsr()

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)
    monkeypatch.setattr(torch.Tensor, "to_dense", refuse)
    model = IConClustering(n_clusters=4, affinity="precomputed", **CPU).fit(A)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    assert sp.issparse(model.affinity_matrix_)


def test_supervisory_is_a_deprecated_name_of_affinity():
    with pytest.warns(FutureWarning, match="use affinity='nearest_neighbors'"):
        old = IConClustering(n_clusters=3, supervisory="knn", max_iter=30, tol=0, **CPU).fit(X_BLOBS)
    new = IConClustering(n_clusters=3, affinity="nearest_neighbors", max_iter=30, tol=0, **CPU).fit(X_BLOBS)
    np.testing.assert_array_equal(old.labels_, new.labels_)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="Set affinity only"):
        IConClustering(n_clusters=3, supervisory="knn", affinity="rbf", **CPU).fit(X_BLOBS)


@pytest.mark.parametrize(
    "params, X, message",
    [
        (dict(affinity="linear"), X_BLOBS, "affinity='linear' gave negative affinities"),
        (dict(affinity="rbf", metric="cosine"), X_BLOBS, "metric='cosine' sets the neighbour search"),
        (
            dict(affinity="precomputed_nearest_neighbors", metric="cosine"),
            pairwise_distances(X_BLOBS),
            "reads X as distances already",
        ),
        (dict(affinity="precomputed", metric="precomputed"), knn_affinity(X_BLOBS), "choose one"),
        (dict(affinity="precomputed"), -knn_affinity(X_BLOBS), "Negative values in data"),
        (dict(affinity="precomputed_nearest_neighbors"), X_BLOBS, "square distance matrix"),
        (dict(affinity="rbf", gamma=50.0), X_BLOBS * 100, "no mass outside the diagonal"),
        (dict(affinity="precomputed", init="k-means++"), knn_affinity(X_BLOBS), "needs input features"),
    ],
)
def test_bad_affinity_settings_give_clear_errors(params, X, message):
    with pytest.raises(ValueError, match=message):
        IConClustering(n_clusters=3, **params, **CPU).fit(X)


def test_user_guide_migration_examples_run():
    """The runnable lines of the user guide's "Coming from KMeans / SpectralClustering" sections."""
    import doctest
    import pathlib

    guide = pathlib.Path(__file__).resolve().parents[1] / "doc" / "user_guide.rst"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testfile(str(guide), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10
    assert result.failed == 0


@pytest.mark.parametrize("sparse", [True, False])
def test_spectral_coordinates_span_what_spectral_clustering_embeds(sparse):
    """The start's embedding spans the subspace of scikit-learn's spectral_embedding (drop_first=False)."""
    from scipy.linalg import subspace_angles
    from sklearn.manifold import spectral_embedding

    from sklearn_icon._clustering import spectral_coordinates

    X, _ = make_blobs(400, centers=4, cluster_std=1.5, random_state=0)
    A = knn_affinity(X, 10)
    A = A if sparse else A.toarray()
    ours = spectral_coordinates(A, 4, np.random.RandomState(0))
    reference = spectral_embedding(A, n_components=4, drop_first=False, random_state=0)
    assert np.rad2deg(subspace_angles(ours, reference)).max() < 1.0


def test_spectral_start_needs_free_logits():
    with pytest.raises(ValueError, match="init='spectral' starts free cluster logits"):
        IConClustering(n_clusters=3, init="spectral", mapper="linear", **CPU).fit(X_BLOBS)


def test_random_free_logits_fragment_a_graph_the_spectral_start_does_not():
    """Why init='auto' is spectral for a precomputed graph (figures in the user guide)."""
    X, y = make_blobs(2400, centers=4, cluster_std=0.5, random_state=0)
    A = knn_affinity(X, 10)
    fits = {
        init: IConClustering(n_clusters=4, affinity="precomputed", init=init, n_init=1, batch_size=None, **CPU).fit(A)
        for init in ("random_weights", "auto")
    }
    assert adjusted_rand_score(y, fits["auto"].labels_) > 0.99
    assert adjusted_rand_score(y, fits["random_weights"].labels_) < 0.8


def test_weights_on_a_precomputed_graph():
    """A graph's points take weights too; zero-weight points leave the loss but keep a label."""
    A = knn_affinity(X_BLOBS)
    weight = np.where(np.arange(len(Y_BLOBS)) % 5 == 0, 0.0, 2.0)
    model = IConClustering(n_clusters=3, affinity="precomputed", **CPU).fit(A, sample_weight=weight)
    assert model.labels_.shape == Y_BLOBS.shape
    assert adjusted_rand_score(Y_BLOBS, model.labels_) > 0.9


#: Columns of the wide sparse feature matrices, as many as a large vocabulary.
WIDE = 100_000


def wide_sparse_blobs(n_samples=300, n_features=WIDE, random_state=0):
    """Blobs in 20 informative columns scattered among ``n_features`` (a bag-of-words matrix's shape), as CSR."""
    X, y = make_blobs(n_samples, n_features=20, centers=3, cluster_std=0.6, random_state=random_state)
    columns = np.random.RandomState(random_state).choice(n_features, 20, replace=False)
    rows = np.repeat(np.arange(n_samples), 20)
    return sp.csr_matrix((X.ravel(), (rows, np.tile(columns, n_samples))), shape=(n_samples, n_features)), y


def test_sparse_features_are_never_densified(monkeypatch):
    """A sparse feature matrix stays sparse through the neighbour search, the mapper, the starts and the attributes."""
    X, y = wide_sparse_blobs()
    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.csc_array, sp.coo_array):
        for method in ("toarray", "todense"):
            original = getattr(cls, method)

            def guarded(self, *args, _original=original, **kwargs):
                # Products of rows (n x n distance blocks) may be dense; the features may not.
                if self.shape[1] == WIDE and self.shape[0] > 3:
                    raise AssertionError("the sparse features were densified")
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(cls, method, guarded)
    weight = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0])
    model = IConClustering(n_clusters=3, **CPU).fit(X, sample_weight=weight)
    assert adjusted_rand_score(y, model.labels_) == 1.0
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.cluster_centers_.shape == (3, WIDE)
    assert model.transform(X[:5]).shape == (5, 3)
    assert model.score(X, sample_weight=weight) == pytest.approx(-model.inertia_)


@pytest.mark.parametrize(
    "params",
    [dict(), dict(mapper="table"), dict(init="random"), dict(affinity="rbf", gamma=0.05), dict(affinity="gaussian")],
    ids=["linear", "table", "random-init", "rbf", "gaussian"],
)
def test_sparse_features_give_the_dense_clusters_and_attributes(params):
    X, y = wide_sparse_blobs(n_features=200)
    dense = X.toarray()
    sparse_fit = IConClustering(n_clusters=3, **params, **CPU).fit(X)
    dense_fit = IConClustering(n_clusters=3, **params, **CPU).fit(dense)
    assert adjusted_rand_score(dense_fit.labels_, sparse_fit.labels_) == 1.0
    assert adjusted_rand_score(y, sparse_fit.labels_) > 0.9
    # Centres and inertia are the dense ones, computed without densifying.
    matched = dense_fit.cluster_centers_[[np.bincount(dense_fit.labels_[sparse_fit.labels_ == k]).argmax() for k in range(3)]]
    np.testing.assert_allclose(sparse_fit.cluster_centers_, matched, rtol=1e-10, atol=1e-12)
    assert sparse_fit.inertia_ == pytest.approx(dense_fit.inertia_, rel=1e-9)
    np.testing.assert_allclose(sparse_fit.transform(X), pairwise_distances(dense, sparse_fit.cluster_centers_), rtol=1e-8)
    if hasattr(sparse_fit, "predict"):
        np.testing.assert_array_equal(sparse_fit.predict(dense), sparse_fit.predict(X))


@pytest.mark.parametrize(
    "container",
    [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.lil_matrix, sp.csr_array, sp.coo_array],
)
def test_every_sparse_container_fits_and_predicts(container):
    X, y = wide_sparse_blobs(n_samples=120, n_features=50)
    X = container(X)
    model = IConClustering(n_clusters=3, **CPU).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    assert model.predict(X).shape == (120,) and model.predict_proba(X).shape == (120, 3)


def test_sparse_features_with_64_bit_indices():
    X, y = wide_sparse_blobs(n_samples=120, n_features=50)
    X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    model = IConClustering(n_clusters=3, metric="cosine", **CPU).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9


@pytest.mark.parametrize(
    "params, reason",
    [(dict(mapper=torch.nn.Linear), "callable mapper"), (dict(affinity="gaussian", divergence="reverse"), "c-SNE")],
)
def test_sparse_features_where_they_cannot_stay_sparse_say_to_densify(params, reason):
    X, _ = wide_sparse_blobs(n_samples=60, n_features=50)
    model = IConClustering(n_clusters=3, **params, **CPU)
    with pytest.raises(TypeError, match=f"Sparse data.*{reason}.*toarray"):
        model.fit(X)
    assert not hasattr(model, "labels_")

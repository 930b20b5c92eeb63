"""IConEmbedding as a drop-in for sklearn.manifold.TSNE: its parameters, meanings, errors and report."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.metrics import pairwise_distances
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import VALID_METRICS, KNeighborsClassifier, kneighbors_graph

import sklearn_icon._embedding as embedding_module
from sklearn_icon import IConEmbedding

FAST = dict(max_iter=150, early_exaggeration_iter=50, device="cpu", random_state=0)

#: Metrics of pairwise_distances that read booleans, or latitude and longitude.
BOOLEAN_METRICS = {"dice", "jaccard", "rogerstanimoto", "russellrao", "sokalsneath", "yule", "hamming"}


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=90, n_features=4, centers=3, random_state=0)


def knn_accuracy(embedding, y):
    return cross_val_score(KNeighborsClassifier(n_neighbors=10), embedding, y, cv=5).mean()


def chebyshev_by_hand(a, b):
    return np.abs(a - b).max()


def metric_case(name, X):
    """Data and metric_params under which ``name`` is defined."""
    if name in BOOLEAN_METRICS:
        return (X > np.median(X, axis=0)).astype(np.float64), None
    if name == "haversine":
        return X[:, :2] / np.abs(X[:, :2]).max() * 1.5, None
    if name == "mahalanobis":
        return X, {"VI": np.linalg.inv(np.cov(X.T))}
    if name == "seuclidean":
        return X, {"V": X.var(axis=0) + 0.5}
    if name == "minkowski":
        return X, {"p": 3}
    return X, None


@pytest.mark.filterwarnings("ignore:Data was converted to boolean")
@pytest.mark.parametrize("metric", sorted(set(VALID_METRICS["brute"]) - {"precomputed"}) + [chebyshev_by_hand])
def test_every_metric_gives_the_embedding_of_its_precomputed_distances(blobs, metric):
    """As TSNE: a metric and the matrix of its distances (squared inside, for both) embed alike."""
    X, params = metric_case(metric, blobs[0])
    D = pairwise_distances(X, metric=metric, **(params or {}))
    # Binary rows tie: with every other point a neighbour (perplexity 30 of
    # 90 points), no tie decides which neighbours the two searches keep.
    perplexity = 30.0 if metric in BOOLEAN_METRICS else 8.0
    common = dict(perplexity=perplexity, init="random", **FAST)
    from_metric = IConEmbedding(metric=metric, metric_params=params, **common).fit_transform(X)
    from_distances = IConEmbedding(metric="precomputed", **common).fit_transform(D)
    np.testing.assert_allclose(from_metric, from_distances, rtol=1e-3, atol=1e-3)


def test_distances_are_squared_before_the_kernel_as_tsne_does(blobs, monkeypatch):
    X, _ = blobs
    seen = []
    calibrate = embedding_module.supervisory_distribution.__globals__["calibrate_to_perplexity"]

    def spy(dist, *args, **kwargs):
        seen.append(dist.clone())
        return calibrate(dist, *args, **kwargs)

    monkeypatch.setitem(embedding_module.supervisory_distribution.__globals__, "calibrate_to_perplexity", spy)
    IConEmbedding(metric="manhattan", perplexity=8, init="random", **FAST).fit(X)
    nearest = np.sort(pairwise_distances(X, metric="manhattan") + np.diag(np.full(len(X), np.inf)), axis=1)
    np.testing.assert_allclose(seen[0].numpy(), nearest[:, : seen[0].shape[1]] ** 2, rtol=1e-10)


def test_sparse_precomputed_distances_read_stored_entries_only(blobs):
    X, _ = blobs
    k = int(3 * 8 + 1)
    graph = kneighbors_graph(X, n_neighbors=k, mode="distance")
    common = dict(perplexity=8, init="random", metric="precomputed", **FAST)
    from_graph = IConEmbedding(**common).fit_transform(graph)
    from_dense = IConEmbedding(**common).fit_transform(pairwise_distances(X))
    np.testing.assert_allclose(from_graph, from_dense, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n_iter_without_progress, stop", [(50, 200), (120, 250), (300, 450)])
def test_n_iter_without_progress_stops_where_tsne_would(blobs, n_iter_without_progress, stop):
    """A step too small to change the float32 KL: no progress after the first checkpoint past
    exaggeration (iteration 100), and TSNE's rule (stop once more than n_iter_without_progress
    iterations passed since the best) ends the fit at the first checkpoint beyond it."""
    long = dict(FAST, max_iter=3000, learning_rate=1e-7)
    model = IConEmbedding(perplexity=8, n_iter_without_progress=n_iter_without_progress, **long).fit(blobs[0])
    assert model.n_iter_ == stop


def test_min_grad_norm_stops_a_fit(blobs):
    X, _ = blobs
    long = dict(FAST, max_iter=3000)
    # A floor above any gradient norm stops at the first checkpoint after exaggeration.
    coarse = IConEmbedding(perplexity=8, min_grad_norm=1e3, **long).fit(X)
    assert coarse.n_iter_ == FAST["early_exaggeration_iter"] + 50
    never = IConEmbedding(perplexity=8, min_grad_norm=0.0, n_iter_without_progress=10**6, **FAST).fit(X)
    assert never.n_iter_ == FAST["max_iter"]


@pytest.mark.parametrize("n_jobs", [1, -1])
def test_n_jobs_sets_torch_threads_for_the_fit_and_restores_them(blobs, monkeypatch, n_jobs):
    import joblib

    expected = joblib.effective_n_jobs(n_jobs)
    seen = []
    build = embedding_module.supervisory_distribution

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return build(*args, **kwargs)

    monkeypatch.setattr(embedding_module, "supervisory_distribution", spy)
    before = torch.get_num_threads()
    IConEmbedding(perplexity=8, n_jobs=n_jobs, **FAST).fit(blobs[0])
    assert seen == [expected]
    assert torch.get_num_threads() == before


def test_n_jobs_restores_threads_when_a_fit_fails(blobs):
    before = torch.get_num_threads()
    with pytest.raises(ValueError):
        IConEmbedding(perplexity=500, n_jobs=1, **FAST).fit(blobs[0])
    assert torch.get_num_threads() == before


def test_barnes_hut_at_angle_zero_is_the_exact_loss(blobs):
    X, _ = blobs
    exact = IConEmbedding(perplexity=8, method="exact", **FAST).fit_transform(X)
    zero = IConEmbedding(perplexity=8, method="barnes_hut", angle=0.0, **FAST).fit_transform(X)
    np.testing.assert_array_equal(exact, zero)


def test_angle_sets_the_interpolation_grid():
    coarse, fine = embedding_module.barnes_hut_grid(0.8), embedding_module.barnes_hut_grid(0.2)
    assert fine["ints_in_interval"] < coarse["ints_in_interval"]
    assert fine["min_num_intervals"] > coarse["min_num_intervals"]
    assert embedding_module.barnes_hut_grid(0.5) == dict(ints_in_interval=1.0, min_num_intervals=100)


@pytest.mark.slow
def test_tsne_full_constructor_line_on_digits(digits):
    """TSNE's whole line, method="barnes_hut" included, with the class name changed."""
    X, y = digits
    line = dict(
        n_components=2, perplexity=30.0, early_exaggeration=12.0, learning_rate="auto", max_iter=1000,
        n_iter_without_progress=300, min_grad_norm=1e-07, metric="euclidean", metric_params=None, init="pca",
        verbose=0, random_state=0, method="barnes_hut", angle=0.5, n_jobs=None,
    )
    model = IConEmbedding(**line)
    embedding = model.fit_transform(X)
    assert knn_accuracy(embedding, y) >= 0.965
    assert trustworthiness(X, embedding, n_neighbors=10) >= 0.985
    exact = IConEmbedding(**dict(line, method="exact")).fit(X)
    assert model.kl_divergence_ <= 1.05 * exact.kl_divergence_
    assert TSNE(**line).get_params().keys() <= IConEmbedding().get_params().keys()


def square_cases():
    D = pairwise_distances(np.random.default_rng(0).normal(size=(30, 3)))
    return [
        (dict(metric="precomputed", init="random", perplexity=5.0), D[:, :20], "square distance matrix"),
        (dict(metric="precomputed", init="random", perplexity=5.0), -D, "positive distances"),
        (dict(metric="precomputed", perplexity=5.0), D, 'init="pca" cannot be used with metric="precomputed"'),
        (dict(perplexity=30.0), D, r"perplexity.*must be less than n_samples"),
    ]


@pytest.mark.parametrize("params, X, message", square_cases())
def test_tsne_bad_inputs_raise_what_tsne_raises(params, X, message):
    with pytest.raises(ValueError):
        TSNE(**params).fit(X)
    with pytest.raises(ValueError, match=message):
        IConEmbedding(**params, device="cpu").fit(X)


def test_sparse_precomputed_with_too_few_neighbors_is_refused(blobs):
    graph = kneighbors_graph(blobs[0], n_neighbors=10, mode="distance")
    with pytest.raises(ValueError):
        TSNE(metric="precomputed", init="random", perplexity=8).fit(graph)
    with pytest.raises(ValueError, match="25 neighbors per sample are required, but some samples have only 10"):
        IConEmbedding(metric="precomputed", init="random", perplexity=8, device="cpu").fit(graph)


def test_other_bad_metric_inputs(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="All distances should be positive"):
        IConEmbedding(metric=lambda a, b: -1.0, perplexity=8, **FAST).fit(X)
    with pytest.raises(ValueError, match="metric_params cannot be used with metric='precomputed'"):
        IConEmbedding(metric="precomputed", metric_params={"p": 3}, init="random", **FAST).fit(pairwise_distances(X))
    with pytest.raises(ValueError, match="is searched exactly"):
        IConEmbedding(metric="chebyshev", neighbors="approximate", perplexity=8, **FAST).fit(X)
    with pytest.raises(ValueError, match="method='barnes_hut' cannot be used with n_components=3"):
        IConEmbedding(n_components=3, method="barnes_hut", perplexity=8, **FAST).fit(X)
    with pytest.raises(ValueError, match="metric"):
        IConEmbedding(metric="no-such-metric", **FAST).fit(X)


def test_sparse_precomputed_affinities_unchanged(blobs):
    """supervisory='precomputed' still reads affinities, not distances."""
    X, y = blobs
    D = pairwise_distances(X)
    A = sp.csr_matrix(np.exp(-(D**2) / 10.0) * (D < 3))
    embedding = IConEmbedding(supervisory="precomputed", init="random", **FAST).fit_transform(A)
    assert knn_accuracy(embedding, y) >= 0.95


# --- transform: openTSNE's placement of new points into a fitted table embedding ---


@pytest.fixture(scope="module")
def fitted_blobs(blobs):
    X, y = blobs
    return IConEmbedding(perplexity=8, **FAST).fit(X[:70]), X, y


@pytest.mark.parametrize("learned", ["student_t", "gaussian"])
def test_transform_is_batch_consistent(blobs, learned):
    """A row's placement does not depend on the rows placed with it (interpolated and exact sums)."""
    X, _ = blobs
    model = IConEmbedding(perplexity=8, learned=learned, **FAST).fit(X[:70])
    together = model.transform(X[70:])
    apart = np.vstack([model.transform(X[70:73]), model.transform(X[73:])])
    np.testing.assert_allclose(together, apart, rtol=0, atol=1e-9)
    assert not np.allclose(together, model.transform(X[70:73])[0])


def test_transform_places_new_points_among_their_neighbours(fitted_blobs):
    model, X, y = fitted_blobs
    placed = model.transform(X[70:])
    knn = KNeighborsClassifier(n_neighbors=5).fit(model.embedding_, y[:70])
    assert knn.score(placed, y[70:]) == 1.0
    # Training points land among their own fitted neighbours, if not at their fitted spot.
    assert knn.score(model.transform(X[:70]), y[:70]) >= 0.95


def test_interpolated_placement_matches_the_exact_sums(fitted_blobs):
    from sklearn_icon._backend.affinities import placement_distribution
    from sklearn_icon._backend.objectives.placement import InterpolatedPlacementObjective, PlacementObjective

    model, X, _ = fitted_blobs
    reference = torch.as_tensor(model.embedding_, dtype=torch.float64)
    P, nearest = placement_distribution(
        torch.as_tensor(X[70:]), torch.as_tensor(X[:70]), perplexity=8.0, n_nearest=5
    )
    Y = torch.quantile(reference[nearest], 0.5, dim=1) + torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    exact_loss, exact_grad = PlacementObjective(P, reference)(Y)
    # The interpolation converges to the exact sums as its boxes shrink; at the default width of one
    # embedding unit its error depends on where the fitted embedding's points fall in the boxes (0.3 %
    # of the loss on one machine's fit of these blobs, under 0.1 % on another's), hence the two bounds.
    errors = []
    for box_width in (1.0, 0.5, 0.25):
        loss, grad = InterpolatedPlacementObjective(P, reference, box_width=box_width)(Y)
        errors.append((abs(float(loss - exact_loss) / float(exact_loss)), float((grad - exact_grad).norm() / exact_grad.norm())))
    assert errors[0][0] < 1e-2 and errors[0][1] < 0.1
    assert errors[-1][0] < 1e-4 and errors[-1][1] < 5e-3
    assert errors[-1][1] < errors[1][1] < errors[0][1]
    # The exact sums' gradient is autograd's of the summed KL.
    Yg = Y.clone().requires_grad_(True)
    kernel = -torch.log1p(((Yg[:, None, :] - reference[None]) ** 2).sum(-1))
    log_q = kernel - torch.logsumexp(kernel, 1, keepdim=True)
    (-(P.to_dense() * log_q).sum()).backward()
    np.testing.assert_allclose(exact_grad.numpy(), Yg.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_transform_of_precomputed_distances_equals_features(blobs):
    X, _ = blobs
    common = dict(perplexity=8, init="random", **FAST)
    features = IConEmbedding(**common).fit(X[:70])
    distances = IConEmbedding(metric="precomputed", **common).fit(pairwise_distances(X[:70]))
    np.testing.assert_allclose(
        features.transform(X[70:]), distances.transform(pairwise_distances(X[70:], X[:70])), rtol=1e-6, atol=1e-6
    )


def test_transform_bad_input(fitted_blobs):
    model, X, _ = fitted_blobs
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :3])
    distances = IConEmbedding(metric="precomputed", perplexity=8, init="random", **FAST).fit(pairwise_distances(X[:70]))
    with pytest.raises(ValueError, match="positive distances"):
        distances.transform(-pairwise_distances(X[70:], X[:70]))


@pytest.mark.slow
def test_transform_digits_like_opentsne(digits):
    """The benchmark's case: fit 1,500 digits, place the other 297 (openTSNE reaches 0.987 here)."""
    X, y = digits
    order = np.random.RandomState(0).permutation(len(X))
    train, new = order[:1500], order[1500:]
    model = IConEmbedding(random_state=0).fit(X[train])
    placed = model.transform(X[new])
    accuracy = KNeighborsClassifier(n_neighbors=10).fit(model.embedding_, y[train]).score(placed, y[new])
    assert accuracy >= 0.97


@pytest.mark.parametrize(
    "params, kind",
    [
        (dict(supervisory="precomputed", init="random"), "affinities"),
        (dict(metric=chebyshev_by_hand), "features"),
        (dict(metric="cosine"), "features"),
        (dict(supervisory="student_t", bandwidth=2.0), "features"),
        (dict(n_components=1), "features"),
        (dict(n_components=3), "features"),
        ({}, "sparse"),
    ],
)
def test_transform_in_every_input_configuration(blobs, params, kind):
    """Affinity rows, callable and torch metrics, a fixed bandwidth, 1-D and 3-D (exact sums), CSR rows."""
    X, y = blobs
    if kind == "affinities":
        D = pairwise_distances(X)
        A = sp.csr_matrix(np.exp(-(D**2) / 10.0) * (D < 3))
        train, new = A[:70, :70], A[70:, :70]
    elif kind == "sparse":
        train, new = sp.csr_matrix(X[:70]), sp.csr_matrix(X[70:])
    else:
        train, new = X[:70], X[70:]
    model = IConEmbedding(perplexity=8, **params, **FAST).fit(train)
    placed = model.transform(new)
    assert placed.shape == (20, model.n_components)
    # Blobs this far apart: every new point among its own blob (the 1-D fit
    # itself mixes a few, 0.986 by cross-validation, so 0.9 leaves room).
    assert KNeighborsClassifier(n_neighbors=5).fit(model.embedding_, y[:70]).score(placed, y[70:]) >= 0.9


@pytest.fixture(scope="module")
def wide_blobs():
    """150 features: above pca_components='auto''s threshold, with noise in every direction."""
    X, y = make_blobs(n_samples=200, n_features=150, centers=4, random_state=0)
    return X + np.random.RandomState(0).normal(scale=3.0, size=X.shape), y


def supervisory_of(model, X):
    return model._supervisory(X, torch.device("cpu")).to_dense()


def test_wide_input_searches_neighbours_in_its_principal_components(wide_blobs, capsys):
    """pca_components='auto' on 150 features: p is the p of the data's first 50 principal components."""
    X, _ = wide_blobs
    model = IConEmbedding(verbose=1, **FAST).fit(X)
    assert "first 50 principal components of the 150 features" in capsys.readouterr().out
    mean, axes = (part.numpy() for part in model._neighbor_pca)
    # The components are the principal axes: orthonormal, and scikit-learn's PCA spans the same subspace.
    np.testing.assert_allclose(axes.T @ axes, np.eye(50), atol=1e-10)
    reference_axes = PCA(50).fit(X).components_.T
    np.testing.assert_allclose(np.linalg.svd(axes.T @ reference_axes, compute_uv=False), 1.0, atol=1e-8)
    projected = (X - mean) @ axes
    reference = IConEmbedding(pca_components=None, **FAST).fit(projected)
    torch.testing.assert_close(supervisory_of(model, X), supervisory_of(reference, projected), rtol=1e-8, atol=1e-12)
    # New points are placed by their neighbours in the same components.
    np.testing.assert_allclose(model.transform(X[:10]), reference.transform(projected[:10]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "params, n_features",
    [(dict(pca_components=None), 150), (dict(), 100), (dict(metric="cosine"), 150), (dict(metric="manhattan"), 150)],
    ids=["none", "100-features", "cosine", "manhattan"],
)
def test_input_searched_as_it_is(wide_blobs, params, n_features):
    """pca_components=None, 100 features or fewer, or a non-Euclidean metric: TSNE's p, of X itself."""
    X = wide_blobs[0][:, :n_features]
    model = IConEmbedding(**params, **FAST)
    model.fit(X)
    assert model._neighbor_pca is None
    direct = IConEmbedding(**{**params, "pca_components": None}, **FAST).fit(X)
    torch.testing.assert_close(supervisory_of(model, X), supervisory_of(direct, X))


def test_explicit_pca_components(wide_blobs):
    X = wide_blobs[0][:, :20]
    model = IConEmbedding(pca_components=5, **FAST).fit(X)
    assert model._neighbor_pca[1].shape == (20, 5)
    with pytest.raises(ValueError, match=r"pca_components=21 must be at most min\(n_samples, n_features\) = 20"):
        IConEmbedding(pca_components=21, **FAST).fit(X)
    with pytest.raises(ValueError, match="pca_components=5 projects features"):
        IConEmbedding(pca_components=5, metric="precomputed", init="random", **FAST).fit(pairwise_distances(X))

"""Neighbour search: exact, pynndescent's approximate one, and the automatic choice."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sklearn_icon import IConClustering, IConEmbedding
from sklearn_icon._backend.affinities.neighbors import (
    _sparse_pair_distances,
    kernel_input_distances,
    nearest_neighbors,
    pair_distances,
)
from sklearn_icon._base import to_torch
from sklearn_icon.metrics import clustering_accuracy


# pynndescent compiles per metric (~15-45 s each), so only the default metric
# is searched here; pair_distances checks the other metrics' kernel inputs.
@pytest.mark.slow
@pytest.mark.parametrize("metric", ["euclidean"])
def test_approximate_search_finds_the_exact_neighbors(digits, metric):
    X = torch.as_tensor(digits[0][:1000])
    exact_dist, exact_idx = nearest_neighbors(X, 15, metric)
    dist, idx = nearest_neighbors(X, 15, metric, method="approximate", random_state=0)
    assert dist.shape == idx.shape == (1000, 15)
    assert not bool((idx == torch.arange(1000)[:, None]).any())
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 15 for a, b in zip(idx, exact_idx)])
    assert recall >= 0.95
    # Kernel inputs of the pairs found are exact, ascending per row.
    reference = kernel_input_distances(X, X, metric).gather(1, idx)
    torch.testing.assert_close(dist, reference, rtol=1e-9, atol=1e-9)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())


def test_approximate_search_never_returns_the_point_itself_among_duplicates():
    X = torch.as_tensor(np.repeat(np.random.default_rng(0).normal(size=(50, 3)), 4, axis=0))
    _, idx = nearest_neighbors(X, 5, method="approximate", random_state=0)
    assert not bool((idx == torch.arange(200)[:, None]).any())


def test_pair_distances_match_the_matrix_form():
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    B = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    for metric in ("euclidean", "sqeuclidean", "cosine", "manhattan"):
        torch.testing.assert_close(pair_distances(A, B, metric), kernel_input_distances(A, B, metric).diagonal())


@pytest.mark.parametrize(
    "metric, offset, scale",
    # (Cosine distances far from the origin are all about 1e-11, below float64's own resolution of them.)
    [("euclidean", 0.0, 1.0), ("euclidean", 1e6, 1.0), ("euclidean", 0.0, 1e30), ("cosine", 0.0, 1.0), ("cosine", 0.0, 1e30)],
)
def test_float32_ranking_finds_the_float64_neighbours(digits, metric, offset, scale):
    # The float64 search ranks by a float32 product and re-ranks in float64: its
    # neighbours are those of the float64 distance matrix, also far from the origin
    # (centred first) and at scales whose float32 squares would overflow.
    X = torch.as_tensor(digits[0][:600]) * scale + offset
    dist, idx = nearest_neighbors(X, 12, metric)
    reference = kernel_input_distances(X, X, metric)
    reference.fill_diagonal_(float("inf"))
    expected = torch.sort(reference, dim=1).values[:, :12]
    torch.testing.assert_close(dist, expected, rtol=1e-9, atol=0.0)
    torch.testing.assert_close(reference.gather(1, idx), dist, rtol=1e-9, atol=0.0)
    assert not bool((idx == torch.arange(600)[:, None]).any())


def test_auto_is_exact_for_small_data(digits):
    X = torch.as_tensor(digits[0])
    exact = nearest_neighbors(X, 10)
    auto = nearest_neighbors(X, 10, method="auto")
    torch.testing.assert_close(auto[0], exact[0])
    assert torch.equal(auto[1], exact[1])


@pytest.mark.slow
def test_estimators_with_approximate_neighbors_keep_their_quality(digits):
    X, y = digits
    embedding = IConEmbedding(neighbors="approximate", max_iter=500, random_state=0, device="cpu").fit(X)
    exact = IConEmbedding(neighbors="exact", max_iter=500, random_state=0, device="cpu").fit(X)
    assert embedding.kl_divergence_ <= exact.kl_divergence_ * 1.03
    clusters = IConClustering(
        n_clusters=10, neighbors="approximate", n_init=1, max_iter=150, random_state=0, device="cpu"
    ).fit(X)
    assert clustering_accuracy(y, clusters.labels_) >= 0.8


@pytest.mark.parametrize("estimator", [IConEmbedding, IConClustering])
def test_approximate_search_of_precomputed_distances_is_refused(estimator):
    D = np.abs(np.subtract.outer(np.arange(20.0), np.arange(20.0)))
    with pytest.raises(ValueError, match="neighbors='approximate'"):
        estimator(metric="precomputed", mapper="table", neighbors="approximate", device="cpu").fit(D)


def sparse_rows(n_samples=300, n_features=400, density=0.03):
    """A TF-IDF-like matrix: non-negative, mostly zero, no empty row."""
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=0)
    X[np.arange(n_samples), np.arange(n_samples) % n_features] = 1.0
    return X.tocsr()


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "manhattan"])
def test_sparse_rows_are_searched_as_their_dense_form(metric):
    X = sparse_rows()
    dist, idx = nearest_neighbors(to_torch(X, "cpu"), 8, metric)
    dense_dist, dense_idx = nearest_neighbors(torch.as_tensor(X.toarray()), 8, metric)
    torch.testing.assert_close(dist, dense_dist, rtol=1e-9, atol=1e-9)
    assert (idx == dense_idx).float().mean() > 0.99  # ties may order differently


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "manhattan"])
def test_sparse_pair_distances_are_the_dense_kernel_inputs(metric):
    X = sparse_rows(50)
    idx = np.random.RandomState(0).randint(0, 50, (50, 4))
    dense = torch.as_tensor(X.toarray())
    expected = pair_distances(dense[:, None, :], dense[torch.as_tensor(idx)], metric)
    np.testing.assert_allclose(_sparse_pair_distances(X, idx, metric), expected.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_approximate_search_of_sparse_rows_finds_the_exact_neighbors():
    X = sparse_rows(1000, 60, density=0.2)
    exact_dist, exact_idx = nearest_neighbors(to_torch(X, "cpu"), 10, "euclidean")
    dist, idx = nearest_neighbors(to_torch(X, "cpu"), 10, "euclidean", method="approximate", random_state=0)
    assert not bool((idx == torch.arange(1000)[:, None]).any())
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(idx, exact_idx)])
    assert recall >= 0.9
    reference = kernel_input_distances(torch.as_tensor(X.toarray()), torch.as_tensor(X.toarray()), "euclidean")
    torch.testing.assert_close(dist, reference.gather(1, idx), rtol=1e-9, atol=1e-9)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())

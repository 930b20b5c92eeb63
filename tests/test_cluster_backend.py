"""Identities of the cluster kernels, the sparse cluster loss and neighbour propagation."""

import math

import numpy as np
import pytest
import torch

from sklearn_icon._backend.affinities.graphs import knn_graph, normalize_rows, propagate
from sklearn_icon._backend.divergence import mix_uniform
from sklearn_icon._backend.kernels.cluster import EdgeList, _log_q_blocks, cluster_log_q, cluster_log_q_dense
from sklearn_icon._backend.objectives.cluster import _sum_log_q_all_pairs, cluster_loss, prepared_cluster_loss
from sklearn_icon.metrics import cluster_to_class_map, clustering_accuracy

N, C = 25, 4


@pytest.fixture
def setting():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn((N, 3), generator=gen, dtype=torch.float64)
    log_phi = torch.log_softmax(3.0 * torch.randn((N, C), generator=gen, dtype=torch.float64), dim=1)
    P = propagate(normalize_rows(knn_graph(X, 4)), 1)
    log_degree = torch.log(knn_graph(X, 4).to_dense().sum(1))
    return P, log_phi, log_degree


def dense_reference_loss(P, log_phi, alpha, alpha_q, log_degree):
    """mean_i KL(p~ || q~) with every pair materialised."""
    n = P.shape[0]
    p = (1 - alpha) * P.to_dense() + alpha / n
    log_q = cluster_log_q_dense(log_phi, log_degree=log_degree, alpha_q=alpha_q)
    return (torch.special.xlogy(p, p) - p * log_q).sum() / n


@pytest.mark.parametrize("degree", [False, True], ids=["cluster", "cluster_degree"])
@pytest.mark.parametrize("alpha_q", [0.0, 0.3])
def test_every_q_row_sums_to_one(setting, degree, alpha_q):
    _, log_phi, log_degree = setting
    q = cluster_log_q_dense(log_phi, log_degree=log_degree if degree else None, alpha_q=alpha_q).exp()
    torch.testing.assert_close(q.sum(1), torch.ones(N, dtype=torch.float64))


def test_cluster_q_is_uniform_within_hard_clusters():
    # One-hot assignments: q(j|i) = 1 / |cluster of i| inside the cluster, 0 outside.
    labels = torch.tensor([0, 0, 0, 1, 1])
    log_phi = torch.log(torch.nn.functional.one_hot(labels, 2).double())
    q = cluster_log_q_dense(log_phi).exp()
    expected = torch.tensor([[1 / 3] * 3 + [0, 0]] * 3 + [[0, 0, 0, 0.5, 0.5]] * 2, dtype=torch.float64)
    torch.testing.assert_close(q, expected)


def test_uniform_mass_of_debiased_q_is_exactly_alpha_over_n():
    labels = torch.tensor([0, 0, 0, 1, 1])
    log_phi = torch.log(torch.nn.functional.one_hot(labels, 2).double())
    alpha_q = 0.2
    q = cluster_log_q_dense(log_phi, alpha_q=alpha_q).exp()
    assert math.isclose(float(q[0, 4]), alpha_q / 5, rel_tol=1e-12)
    assert math.isclose(float(q[0, 1]), (1 - alpha_q) / 3 + alpha_q / 5, rel_tol=1e-12)


@pytest.mark.parametrize("degree", [False, True], ids=["cluster", "cluster_degree"])
def test_edge_q_equals_the_dense_definition(setting, degree):
    P, log_phi, log_degree = setting
    rows, cols = P.indices()
    deg = log_degree if degree else None
    torch.testing.assert_close(
        cluster_log_q(log_phi, rows, cols, log_degree=deg),
        cluster_log_q_dense(log_phi, log_degree=deg)[rows, cols],
    )


@pytest.mark.parametrize("degree", [False, True], ids=["cluster", "cluster_degree"])
@pytest.mark.parametrize("alpha, alpha_q", [(0.0, 0.0), (0.4, 0.0), (0.0, 0.3), (0.4, 0.3)])
def test_sparse_loss_and_gradient_equal_the_dense_reference(setting, degree, alpha, alpha_q):
    P, log_phi, log_degree = setting
    deg = log_degree if degree else None
    log_phi = log_phi.clone().requires_grad_(True)
    dense = dense_reference_loss(P, log_phi, alpha, alpha_q, deg)
    (g_dense,) = torch.autograd.grad(dense, log_phi)
    for edges in (None, EdgeList.from_sparse(P)):
        sparse = cluster_loss(P, log_phi, alpha=alpha, alpha_q=alpha_q, log_degree=deg, block_size=7, edges=edges)
        assert abs(float(sparse.detach()) - float(dense.detach())) < 1e-12
        (g_sparse,) = torch.autograd.grad(sparse, log_phi)
        torch.testing.assert_close(g_sparse, g_dense, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("degree", [False, True], ids=["cluster", "cluster_degree"])
@pytest.mark.parametrize("alpha, alpha_q", [(0.0, 0.0), (0.4, 0.3)])
def test_prepared_loss_and_gradient_equal_the_dense_reference(setting, degree, alpha, alpha_q):
    # The propagated P has a symmetric pattern but asymmetric values: the plain kernel's
    # prepared loss runs on its symmetric part, with the one-product gradient.
    P, log_phi, log_degree = setting
    assert not torch.allclose(P.to_dense(), P.to_dense().T)
    deg = log_degree if degree else None
    log_phi = log_phi.clone().requires_grad_(True)
    dense = dense_reference_loss(P, log_phi, alpha, alpha_q, deg)
    (g_dense,) = torch.autograd.grad(dense, log_phi)
    prepared = prepared_cluster_loss(P, alpha=alpha, alpha_q=alpha_q, log_degree=deg)(log_phi)
    assert abs(float(prepared.detach()) - float(dense.detach())) < 1e-12
    (g_prepared,) = torch.autograd.grad(prepared, log_phi)
    torch.testing.assert_close(g_prepared, g_dense, atol=1e-12, rtol=1e-10)


def test_symmetric_edges_are_used_only_for_a_symmetric_pattern():
    import sklearn_icon._backend.objectives.cluster as objectives

    built = []
    original = objectives.EdgeList.from_sparse
    with pytest.MonkeyPatch.context() as patch:
        def recording(P, symmetric=False):
            built.append(symmetric)
            return original(P, symmetric)

        patch.setattr(objectives.EdgeList, "from_sparse", recording)
        indices = torch.tensor([[0, 1, 2], [1, 2, 0]])
        one_way = torch.sparse_coo_tensor(indices, torch.ones(3, dtype=torch.float64), (3, 3))
        prepared_cluster_loss(one_way)
        two_way = torch.sparse_coo_tensor(torch.cat([indices, indices.flip(0)], 1), torch.ones(6) / 2, (3, 3))
        prepared_cluster_loss(two_way.double())
    assert built == [False, True]


def test_symmetric_edge_gradient_keeps_the_floor_of_the_two_product_one(setting):
    # An edge between points that share no cluster to e^-1000: its q is floored and its
    # gradient dropped. The one-product gradient on p's symmetric part must do what the
    # two-product gradient on p's own edges does there.
    P, log_phi, _ = setting
    rows, cols = P.indices()
    i, j = int(rows[0]), int(cols[0])
    log_phi = log_phi.clone()
    log_phi[i] = torch.tensor([0.0, -1000.0, -1000.0, -1000.0])
    log_phi[j] = torch.tensor([-1000.0, 0.0, -1000.0, -1000.0])
    log_phi.requires_grad_(True)
    two_products = cluster_loss(P, log_phi, edges=EdgeList.from_sparse(P))
    (expected,) = torch.autograd.grad(two_products, log_phi)
    one_product = prepared_cluster_loss(P)(log_phi)
    # The floored pair's loss term is a convention (either direction's shifted product is
    # floored), so the values are only both finite.
    assert math.isfinite(float(one_product.detach())) and math.isfinite(float(two_products.detach()))
    (got,) = torch.autograd.grad(one_product, log_phi)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("alpha_q", [0.0, 0.3])
def test_all_pairs_term_matches_autograd_where_q_underflows(alpha_q):
    # Points 0 and 1 sit in different clusters with e^-1000 of the other:
    # q(1|0) underflows below the smallest float and is floored. The
    # hand-written backward must give the floored pairs zero gradient, as
    # autograd through the floor does.
    gen = torch.Generator().manual_seed(1)
    log_phi = torch.log_softmax(torch.randn((9, 3), generator=gen, dtype=torch.float64), dim=1)
    log_phi[0] = torch.tensor([0.0, -1000.0, -1000.0])
    log_phi[1] = torch.tensor([-1000.0, 0.0, -1000.0])
    log_phi.requires_grad_(True)
    reference = sum(
        mix_uniform(block, alpha_q, 1.0 / 9).sum() for block in _log_q_blocks(log_phi, None, block_size=4)
    )
    total = _sum_log_q_all_pairs(log_phi, None, alpha_q, block_size=4)
    assert math.isclose(float(total.detach()), float(reference.detach()), rel_tol=1e-13)
    (expected,) = torch.autograd.grad(reference, log_phi)
    (got,) = torch.autograd.grad(total, log_phi)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)


def test_loss_is_zero_only_when_q_matches_p():
    # p uniform within two groups; hard assignments to those groups give q = p
    # except the point itself, which q also counts: KL is log(|group|/(|group|-1)).
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    same = labels[:, None] == labels[None, :]
    A = (same & ~torch.eye(6, dtype=torch.bool)).double().to_sparse()
    P = normalize_rows(A)
    perfect = torch.log(torch.nn.functional.one_hot(labels, 2).double())
    assert math.isclose(float(cluster_loss(P, perfect)), math.log(3 / 2), rel_tol=1e-12)
    wrong = torch.log(torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 1, 0, 1]), 2).double())
    assert float(cluster_loss(P, wrong)) > math.log(3 / 2)


def test_knn_graph_is_symmetric_and_counts_mutual_edges_twice(setting):
    X = torch.randn((30, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    G = knn_graph(X, 3).to_dense()
    torch.testing.assert_close(G, G.T)
    assert torch.all(G.diagonal() == 0)
    assert set(G.unique().tolist()) <= {0.0, 1.0, 2.0}
    assert torch.all((G > 0).sum(1) >= 3)


def test_propagation_sums_powers_of_p():
    gen = torch.Generator().manual_seed(2)
    A = (torch.rand((12, 12), generator=gen, dtype=torch.float64) < 0.25).double()
    A.fill_diagonal_(0)
    A[torch.arange(12), (torch.arange(12) + 1) % 12] = 1.0
    P = normalize_rows(A.to_sparse())
    dense = P.to_dense()
    expected = dense + dense @ dense + dense @ dense @ dense
    expected.fill_diagonal_(0)
    expected = expected / expected.sum(1, keepdim=True)
    torch.testing.assert_close(propagate(P, 2).to_dense(), expected)
    reachable = propagate(P, 2, mode="reachable").to_dense()
    support = (expected > 0).double()
    torch.testing.assert_close(reachable, support / support.sum(1, keepdim=True))
    torch.testing.assert_close(propagate(P, 0).to_dense(), dense)


def test_clustering_accuracy_is_the_best_one_to_one_map():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([5, 5, 4, 4, 4, 3, 3, 5])
    # 5->0 (2), 4->1 (2), 3->2 (2): 6 of 8.
    assert clustering_accuracy(y_true, y_pred) == 0.75
    assert clustering_accuracy(y_true, y_true + 7) == 1.0
    assert cluster_to_class_map(y_true, y_pred) == {5: 0, 4: 1, 3: 2}
    with pytest.raises(ValueError):
        clustering_accuracy([0, 1], [0])

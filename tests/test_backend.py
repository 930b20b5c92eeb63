"""Identities of the I-Con engine: distributions, the loss, its gradient."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import squareform
from sklearn.manifold._t_sne import _kl_divergence

from sklearn_icon._backend.affinities import supervisory_distribution
from sklearn_icon._backend.affinities.calibration import calibrate_to_perplexity
from sklearn_icon._backend.affinities.labels import mix_label_distribution, shared_label_distribution
from sklearn_icon._backend.affinities.neighbors import nearest_neighbors
from sklearn_icon._backend.divergence import debias, kl_divergence
from sklearn_icon._backend.kernels.distance import LEARNED_KERNELS, log_kernel_matrix, log_q_from_log_kernel
from sklearn_icon._backend.mappers import RowsLinear, SparseRows
from sklearn_icon._backend.objectives import exact as loss_module
from sklearn_icon._backend.objectives.autograd import AutogradObjective, icon_loss
from sklearn_icon._backend.objectives.exact import DistanceKernelObjective
from sklearn_icon._backend.training import train_table

N = 30


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn((N, 6), generator=gen, dtype=torch.float64)
    Y = torch.randn((N, 2), generator=gen, dtype=torch.float64)
    return X, Y


SUPERVISORY_CASES = [
    dict(kernel="gaussian", perplexity=5.0),
    dict(kernel="student_t", perplexity=5.0),
    dict(kernel="gaussian", bandwidth=1.5),
    dict(kernel="student_t", bandwidth=1.5),
    dict(kernel="knn", n_neighbors=4),
]


@pytest.mark.parametrize("case", SUPERVISORY_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_conditional_p_rows_sum_to_one_with_zero_diagonal(data, case):
    P = supervisory_distribution(data[0], normalization="conditional", **case)
    dense = P.to_dense() if P.is_sparse else P
    torch.testing.assert_close(dense.sum(1), torch.ones(N, dtype=torch.float64))
    assert torch.all(dense.diagonal() == 0)
    assert torch.all(dense >= 0)


@pytest.mark.parametrize("case", SUPERVISORY_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_joint_p_is_symmetric_and_sums_to_one(data, case):
    P = supervisory_distribution(data[0], normalization="joint", **case)
    dense = P.to_dense() if P.is_sparse else P
    torch.testing.assert_close(dense, dense.T)
    assert math.isclose(float(dense.sum()), 1.0, rel_tol=1e-12)


def test_precomputed_affinities_are_row_normalised_dense_and_sparse(data):
    A = torch.rand((N, N), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    P = supervisory_distribution(A, kernel="precomputed", normalization="conditional")
    expected = A.clone().fill_diagonal_(0)
    torch.testing.assert_close(P, expected / expected.sum(1, keepdim=True))
    sparse = supervisory_distribution(A.to_sparse(), kernel="precomputed", normalization="conditional")
    torch.testing.assert_close(sparse.to_dense(), P)


def test_precomputed_row_without_mass_is_rejected():
    A = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="no mass outside the diagonal"):
        supervisory_distribution(A, kernel="precomputed")


def test_gaussian_perplexity_calibration_hits_the_target_entropy(data):
    dist, _ = nearest_neighbors(data[0], 16)
    P = calibrate_to_perplexity(dist, 5.0, "gaussian")
    entropy = -torch.special.xlogy(P, P).sum(1)
    torch.testing.assert_close(entropy, torch.full((N,), math.log(5.0), dtype=torch.float64), atol=1e-5, rtol=0)


def test_student_t_calibration_reaches_the_target_or_its_sharpest_limit():
    # A Cauchy kernel cannot get sharper than p ~ 1/d: rows whose 1/d
    # distribution is flatter than the target end at that limit.
    X = torch.randn((60, 2), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dist, _ = nearest_neighbors(X, 20)
    target = 8.0
    P = calibrate_to_perplexity(dist, target, "student_t")
    entropy = -torch.special.xlogy(P, P).sum(1)
    limit = (1.0 / dist) / (1.0 / dist).sum(1, keepdim=True)
    limit_entropy = -torch.special.xlogy(limit, limit).sum(1)
    reachable = limit_entropy < math.log(target) - 1e-3
    assert reachable.sum() > 10 and (~reachable).sum() > 0
    torch.testing.assert_close(entropy[reachable], torch.full_like(entropy[reachable], math.log(target)), atol=1e-5, rtol=0)
    torch.testing.assert_close(P[~reachable], limit[~reachable], atol=1e-6, rtol=0)


def test_nearest_neighbors_match_brute_force(data):
    X = data[0]
    dist, idx = nearest_neighbors(X, 5, block_size=7)
    full = torch.cdist(X, X) ** 2
    full.fill_diagonal_(math.inf)
    expected_dist, expected_idx = torch.topk(full, 5, largest=False)
    torch.testing.assert_close(dist, expected_dist)
    assert torch.equal(idx, expected_idx)


@pytest.mark.parametrize("learned", LEARNED_KERNELS)
@pytest.mark.parametrize("alpha_q", [0.0, 0.25])
def test_every_q_row_sums_to_one(data, learned, alpha_q):
    log_q = log_q_from_log_kernel(log_kernel_matrix(data[1], learned), "conditional", alpha_q)
    q = log_q.exp()
    torch.testing.assert_close(q.sum(1), torch.ones(N, dtype=torch.float64))
    assert torch.all(q.diagonal() == 0)
    joint = log_q_from_log_kernel(log_kernel_matrix(data[1], learned), "joint", alpha_q).exp()
    assert math.isclose(float(joint.sum()), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize("normalization", ["conditional", "joint"])
def test_debiased_p_is_the_uniform_mixture(data, normalization):
    alpha = 0.3
    P = supervisory_distribution(data[0], perplexity=5.0, normalization=normalization).to_dense()
    mixed = debias(P, alpha, normalization)
    uniform = 1.0 / (N - 1) if normalization == "conditional" else 1.0 / (N * (N - 1))
    off_diagonal = ~torch.eye(N, dtype=torch.bool)
    torch.testing.assert_close(mixed[off_diagonal], (1 - alpha) * P[off_diagonal] + alpha * uniform)
    assert torch.all(mixed.diagonal() == 0)
    total = mixed.sum(1) if normalization == "conditional" else mixed.sum()
    torch.testing.assert_close(total, torch.ones_like(total))


def test_debiased_q_puts_exactly_alpha_over_n_on_a_far_point():
    # Two far clusters: q of a cross-cluster pair is the uniform part alone.
    Y = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1e4, 0.0], [1e4, 0.1]], dtype=torch.float64)
    alpha_q = 0.2
    q = log_q_from_log_kernel(log_kernel_matrix(Y, "gaussian"), "conditional", alpha_q).exp()
    assert math.isclose(float(q[0, 2]), alpha_q / 3, rel_tol=1e-12)
    assert math.isclose(float(q[0, 1]), 1 - alpha_q + alpha_q / 3, rel_tol=1e-12)


@pytest.mark.parametrize("normalization", ["conditional", "joint"])
@pytest.mark.parametrize("learned", LEARNED_KERNELS)
def test_kl_is_non_negative_and_zero_when_q_equals_p(data, normalization, learned):
    P = supervisory_distribution(data[0], perplexity=5.0, normalization=normalization)
    assert float(icon_loss(P, data[1], learned=learned, normalization=normalization)) >= 0
    dense = P.to_dense()
    log_p = torch.log(dense)
    assert abs(float(kl_divergence(P, log_p, normalization))) < 1e-12
    assert abs(float(kl_divergence(dense, log_p, normalization))) < 1e-12


def test_joint_student_t_loss_and_gradient_equal_sklearn_tsne(data):
    X, Y = data
    P = supervisory_distribution(X, perplexity=5.0, normalization="joint").to_dense()
    Y = Y.clone().requires_grad_(True)
    loss = icon_loss(P, Y, learned="student_t", normalization="joint")
    (grad,) = torch.autograd.grad(loss, Y)
    condensed = squareform(P.numpy(), checks=False)
    sk_loss, sk_grad = _kl_divergence(Y.detach().numpy().ravel(), condensed, 1, N, 2)
    assert abs(float(loss.detach()) - sk_loss) < 1e-6
    np.testing.assert_allclose(grad.numpy().ravel(), sk_grad, atol=1e-6, rtol=0)
    closed_loss, closed_grad = DistanceKernelObjective(P, "student_t", "joint")(Y.detach())
    assert abs(float(closed_loss) - sk_loss) < 1e-6
    np.testing.assert_allclose(closed_grad.numpy().ravel(), sk_grad, atol=1e-6, rtol=0)


@pytest.mark.parametrize("normalization", ["conditional", "joint"])
@pytest.mark.parametrize(
    "learned,dof,temperature",
    [("student_t", 1.0, 0.5), ("student_t", 2.5, 0.5), ("gaussian", 1.0, 0.5), ("gaussian", 1.0, 7.0)],
)
@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("alpha_q", [0.0, 0.4])
@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_closed_form_gradient_equals_autograd(
    data, normalization, learned, dof, temperature, alpha, alpha_q, layout, monkeypatch
):
    # This small P is too dense for the sparse attraction's default switch.
    monkeypatch.setattr(loss_module, "SPARSE_DENSITY_LIMIT", 1.0)
    monkeypatch.setattr(loss_module, "SPARSE_DENSITY_LIMIT_DEBIASED", 1.0)
    X, Y = data
    P = supervisory_distribution(X, perplexity=5.0, normalization=normalization)
    P = P.to_dense() if layout == "dense" else P
    Y = Y.clone().requires_grad_(True)
    loss = icon_loss(
        P,
        Y,
        learned=learned,
        normalization=normalization,
        alpha=alpha,
        alpha_q=alpha_q,
        dof=dof,
        temperature=temperature,
    )
    (grad,) = torch.autograd.grad(loss, Y)
    objective = DistanceKernelObjective(
        P, learned, normalization, alpha=alpha, alpha_q=alpha_q, dof=dof, temperature=temperature
    )
    assert objective.sparse == (layout == "sparse")
    closed_loss, closed_grad = objective(Y.detach())
    assert abs(float(closed_loss) - float(loss.detach())) < 1e-10
    torch.testing.assert_close(closed_grad, grad, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("normalization", ["conditional", "joint"])
def test_exaggeration_scales_attraction_only_in_both_objectives(data, normalization):
    X, Y = data
    P = supervisory_distribution(X, perplexity=5.0, normalization=normalization)
    closed = DistanceKernelObjective(P, "student_t", normalization)
    auto = AutogradObjective(P, "student_t", normalization)
    _, g_closed = closed(Y, exaggeration=4.0)
    loss, g_auto = auto(Y, exaggeration=4.0)
    torch.testing.assert_close(g_closed, g_auto, atol=1e-12, rtol=1e-9)
    # The reported loss is the plain one.
    assert abs(float(loss) - float(icon_loss(P, Y, normalization=normalization))) < 1e-12


def test_shared_label_distribution_is_uniform_over_partners():
    labels = torch.tensor([0, 0, 1, 1, 1, -1, 2])
    P = shared_label_distribution(labels).to_dense()
    assert torch.all(P.diagonal() == 0)
    # Partners: rows sum to one; the unlabelled sample and the lone label 2 have none.
    np.testing.assert_allclose(P.sum(1).numpy(), [1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(P[2].numpy(), [0, 0, 0, 0.5, 0.5, 0, 0])
    assert torch.all(P[:, 5] == 0) and torch.all(P[:, 6] == 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_label_mixing_keeps_rows_stochastic_and_unlabelled_rows_unchanged(data, sparse):
    labels = torch.arange(N) % 3
    labels[::4] = -1
    P = supervisory_distribution(data[0], perplexity=5.0, normalization="conditional")
    P = P if sparse else P.to_dense()
    mixed = mix_label_distribution(P, labels, 0.3)
    assert mixed.is_sparse == sparse
    mixed, dense_P = mixed.to_dense(), P.to_dense()
    np.testing.assert_allclose(mixed.sum(1).numpy(), 1.0, rtol=1e-12)
    unlabelled = labels == -1
    torch.testing.assert_close(mixed[unlabelled], dense_P[unlabelled])
    expected = 0.7 * dense_P[1] + 0.3 * shared_label_distribution(labels).to_dense()[1]
    torch.testing.assert_close(mixed[1], expected)


@pytest.mark.parametrize("normalization", ["joint", "conditional"])
def test_exaggeration_leaves_the_uniform_part_of_debiasing_alone(data, normalization):
    # Early exaggeration multiplies (1 - alpha) p only: were the uniform part
    # exaggerated too, every pair would pull 12x harder and (digits, alpha=0.2)
    # the embedding collapsed to a point.
    X, Y = data
    alpha, exaggeration = 0.3, 4.0
    P = supervisory_distribution(X, perplexity=5.0, normalization=normalization).to_dense()
    Yg = Y.clone().requires_grad_(True)
    n = N
    data_kl = icon_loss(P, Yg, normalization=normalization)
    uniform_kl = icon_loss(P, Yg, normalization=normalization, alpha=1.0)  # KL(u || q)
    log_k = log_kernel_matrix(Yg, "student_t").masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
    if normalization == "joint":
        log_norm = torch.logsumexp(log_k.reshape(-1), 0)
    else:
        log_norm = torch.logsumexp(log_k, 1).mean()
    surrogate = (
        exaggeration * (1 - alpha) * data_kl + alpha * uniform_kl - (exaggeration - 1) * (1 - alpha) * log_norm
    )
    (expected,) = torch.autograd.grad(surrogate, Yg)
    _, closed_form = DistanceKernelObjective(P, "student_t", normalization, alpha=alpha)(Y, exaggeration=exaggeration)
    _, autograd = AutogradObjective(P, "student_t", normalization, alpha=alpha)(Y, exaggeration=exaggeration)
    torch.testing.assert_close(closed_form, expected, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(autograd, expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("normalization", ["joint", "conditional"])
def test_exaggeration_with_debiased_q_multiplies_the_attraction_only(data, normalization, monkeypatch):
    # With alpha_q the normaliser no longer carries all the repulsion:
    # t-SNE's surrogate "e * loss - (e - 1) * log-normaliser" then turned the
    # repulsion into attraction and digits collapsed (alpha = alpha_q = 0.2:
    # 10-NN accuracy 0.10). The attraction is the data term's gradient with
    # the kernel's share r of each q~_ij held fixed.
    X, Y = data
    alpha, alpha_q, exaggeration = 0.3, 0.4, 6.0
    P = supervisory_distribution(X, perplexity=5.0, normalization=normalization).to_dense()
    objective = AutogradObjective(P, "student_t", normalization, alpha=alpha, alpha_q=alpha_q)
    _, plain = objective(Y)
    _, exaggerated = objective(Y, exaggeration=exaggeration)
    monkeypatch.setattr(loss_module, "SPARSE_DENSITY_LIMIT", 1.0)
    monkeypatch.setattr(loss_module, "SPARSE_DENSITY_LIMIT_DEBIASED", 1.0)
    for layout in (P, P.to_sparse()):
        closed_form = DistanceKernelObjective(layout, "student_t", normalization, alpha=alpha, alpha_q=alpha_q)
        torch.testing.assert_close(closed_form(Y, exaggeration=exaggeration)[1], exaggerated, rtol=1e-8, atol=1e-12)

    Yg = Y.clone().requires_grad_(True)
    log_k = log_kernel_matrix(Yg, "student_t")
    with torch.no_grad():
        debiased = log_q_from_log_kernel(log_k, normalization, alpha_q)
        share = (log_q_from_log_kernel(log_k, normalization) + math.log1p(-alpha_q) - debiased).exp()
    support = P > 0
    attraction = -(1 - alpha) * (P * share * torch.where(support, log_k, 0.0)).sum()
    if normalization == "conditional":
        attraction = attraction / N
    (attraction_grad,) = torch.autograd.grad(attraction, Yg)
    torch.testing.assert_close(exaggerated - plain, (exaggeration - 1) * attraction_grad, rtol=1e-8, atol=1e-12)


class _ConstantGradient:
    """An objective whose gradient is one everywhere, to read the step sizes off the moves."""

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        return torch.tensor(0.0), torch.ones_like(Y)

    def loss(self, Y):
        return torch.tensor(0.0)


@pytest.mark.parametrize("exploration, expected_move", [(1, -0.8 * 2.0), (0, -0.8 * 30.0)])
def test_gradient_descent_takes_the_late_step_after_exaggeration(exploration, expected_move):
    # The first step of a phase starts from zero velocity with gains 0.8.
    Y, result = train_table(
        _ConstantGradient(),
        torch.zeros((3, 2), dtype=torch.float64),
        max_iter=1,
        learning_rate=2.0,
        late_learning_rate=30.0,
        early_exaggeration_iter=exploration,
    )
    assert result.n_iter == 1
    torch.testing.assert_close(Y, torch.full((3, 2), expected_move, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_rows_multiply_and_differentiate_as_their_dense_form(dtype):
    X = sp.random(60, 40, density=0.1, format="lil", random_state=0)
    X[5] = 0.0  # a row with no stored entry
    X = X.tocsr()
    X.eliminate_zeros()
    rows, dense = SparseRows.from_scipy(X, dtype), torch.as_tensor(X.toarray(), dtype=dtype)
    layer = RowsLinear(40, 3, dtype=dtype)
    index = torch.tensor([5, 0, 59, 5, 17])
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for sparse_input, dense_input in ((rows, dense), (rows.index_select(0, index), dense[index])):
        grads = []
        for inputs in (sparse_input, dense_input):
            layer.zero_grad()
            out = layer(inputs)
            (out**2).sum().backward()
            grads.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone()))
        for sparse_value, dense_value in zip(*grads):
            torch.testing.assert_close(sparse_value, dense_value, **tolerance)
    if dtype == torch.float64:
        weight = layer.weight.detach().clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda w: rows.index_select(0, index).linear(w), (weight,))

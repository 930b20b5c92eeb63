"""The prototype backend of IConClassifier: distributions, the loss, label smoothing, optimisers."""

import math

import numpy as np
import pytest
import torch

from sklearn_icon._backend.affinities.labels import label_distribution
from sklearn_icon._backend.divergence import label_kl
from sklearn_icon._backend.kernels.prototypes import (
    PROTOTYPE_KERNELS,
    PrototypeClassifier,
    debias_log_q,
    prototype_logits,
)
from sklearn_icon._backend.optim import lbfgs
from sklearn_icon._backend.training import train_minibatch


@pytest.fixture
def problem():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 5, generator=generator, dtype=torch.float64)
    prototypes = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 4, (40,), generator=generator)
    return features, prototypes, labels


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0])
def test_label_distribution_is_smoothed_one_hot(alpha):
    labels = torch.tensor([0, 2, 1, 2])
    P = label_distribution(labels, 3, alpha)
    torch.testing.assert_close(P.sum(1), torch.ones(4, dtype=torch.float64))
    expected = torch.full((4, 3), alpha / 3, dtype=torch.float64)
    expected[torch.arange(4), labels] += 1 - alpha
    torch.testing.assert_close(P, expected)


@pytest.mark.parametrize("kernel", PROTOTYPE_KERNELS)
@pytest.mark.parametrize("alpha_q", [0.0, 0.2])
def test_q_rows_are_distributions_floored_by_alpha_q(problem, kernel, alpha_q):
    features, prototypes, _ = problem
    log_q = debias_log_q(torch.log_softmax(prototype_logits(features, prototypes, kernel=kernel), 1), alpha_q)
    q = log_q.exp()
    torch.testing.assert_close(q.sum(1), torch.ones(40, dtype=torch.float64))
    assert float(q.min()) >= alpha_q / 4 - 1e-15


def test_kernels_match_their_definitions(problem):
    features, prototypes, _ = problem
    bias = torch.arange(4, dtype=torch.float64)
    torch.testing.assert_close(
        prototype_logits(features, prototypes, bias, kernel="softmax"), features @ prototypes.T + bias
    )
    cosine = torch.nn.functional.cosine_similarity(features[:, None], prototypes[None], dim=2)
    torch.testing.assert_close(prototype_logits(features, prototypes, kernel="cosine", temperature=0.5), cosine / 0.5)
    distance = torch.cdist(features, prototypes)
    harmonic = torch.log_softmax(prototype_logits(features, prototypes, kernel="harmonic", exponent=3.0), 1)
    power = distance**-3.0
    torch.testing.assert_close(harmonic.exp(), power / power.sum(1, keepdim=True))


def test_harmonic_is_finite_on_a_prototype():
    prototypes = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    features = prototypes[:1].clone().requires_grad_(True)
    log_q = torch.log_softmax(prototype_logits(features, prototypes, kernel="harmonic"), 1)
    log_q[0, 0].backward()
    assert torch.isfinite(log_q).all() and torch.isfinite(features.grad).all()
    assert float(log_q[0, 0].detach().exp()) == pytest.approx(1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_loss_is_cross_entropy_against_smoothed_labels(problem, alpha):
    """Debiasing p is label smoothing: KL(p~||q) = CE(p~, q) - H(p~), the entropy a constant."""
    features, prototypes, labels = problem
    logits = prototype_logits(features, prototypes, kernel="softmax")
    P = label_distribution(labels, 4, alpha)
    reference = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=alpha)
    entropy = -torch.special.xlogy(P, P).sum(1).mean()
    torch.testing.assert_close(label_kl(P, torch.log_softmax(logits, 1)), reference - entropy)


def test_loss_is_zero_only_at_q_equal_p(problem):
    _, _, labels = problem
    P = label_distribution(labels, 4, 0.2)
    assert float(label_kl(P, P.log())) == pytest.approx(0.0, abs=1e-15)
    uniform = torch.full_like(P, 0.25).log()
    assert float(label_kl(P, uniform)) > 0.1


def test_sample_weight_is_repetition(problem):
    features, prototypes, labels = problem
    P = label_distribution(labels, 4, 0.1)
    log_q = torch.log_softmax(prototype_logits(features, prototypes, kernel="softmax"), 1)
    counts = torch.arange(40) % 3
    weighted = label_kl(P, log_q, counts.to(torch.float64))
    repeated = label_kl(P.repeat_interleave(counts, 0), log_q.repeat_interleave(counts, 0))
    torch.testing.assert_close(weighted, repeated)


def test_two_class_penalty_is_logistic_regressions():
    prototypes = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    model = PrototypeClassifier(torch.nn.Identity(), prototypes, kernel="softmax")
    difference = prototypes[1] - prototypes[0]
    assert float(model.penalty().detach()) == pytest.approx(0.5 * float(difference @ difference))
    three = PrototypeClassifier(torch.nn.Identity(), torch.ones(3, 2, dtype=torch.float64), kernel="softmax")
    assert float(three.penalty().detach()) == pytest.approx(3.0)
    free = PrototypeClassifier(torch.nn.Identity(), prototypes, kernel="harmonic")
    assert float(free.penalty().detach()) == 0.0


def test_unknown_kernel_is_named():
    with pytest.raises(ValueError, match="Unknown prototype kernel 'rbf'"):
        PrototypeClassifier(torch.nn.Identity(), torch.zeros(2, 2), kernel="rbf")


def test_lbfgs_reaches_the_minimum_of_a_quadratic():
    target = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = lbfgs([x], lambda: ((x - target) ** 2 * torch.tensor([1.0, 10.0, 100.0])).sum(), tol=1e-10)
    losses, n_iter, converged = result.losses, result.n_iter, result.converged
    assert converged and n_iter < 50
    torch.testing.assert_close(x.detach(), target)
    assert losses[0] == pytest.approx(1 * 1 + 10 * 4 + 100 * 9) and losses[-1] < 1e-15


def test_lbfgs_reports_non_convergence():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    rosenbrock = lambda: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # noqa: E731
    result = lbfgs([x], rosenbrock, max_iter=3, tol=1e-10)
    losses, n_iter, converged = result.losses, result.n_iter, result.converged
    assert n_iter == 3 and not converged and len(losses) == 4


def test_adam_stops_when_the_loss_stops_improving():
    target = torch.linspace(-1, 1, 100)
    x = torch.zeros(100, requires_grad=True)
    result = train_minibatch(
        [x], lambda index: ((x[index] - target[index]) ** 2).mean(), 100, batch_size=25,
        max_iter=500, learning_rate=0.05, tol=1e-6, n_iter_no_change=5, generator=torch.Generator().manual_seed(0),
    )
    losses, n_epochs, converged = result.losses, result.n_iter, result.converged
    assert converged and n_epochs < 500 and losses[-1] < 1e-4
    assert math.isfinite(losses[0]) and len(losses) == n_epochs
    np.testing.assert_allclose(x.detach().numpy(), target.numpy(), atol=0.02)


def test_affine_body_is_penalised_towards_the_identity_not_zero():
    body = torch.nn.Linear(3, 3, dtype=torch.float64)
    with torch.no_grad():
        body.weight.copy_(torch.eye(3, dtype=torch.float64))
    model = PrototypeClassifier(body, torch.ones(2, 3, dtype=torch.float64), kernel="cosine")
    assert float(model.penalty().detach()) == 0.0
    with torch.no_grad():
        body.weight.mul_(2.0)
    assert float(model.penalty().detach()) == pytest.approx(1.5)

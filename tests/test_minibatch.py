"""Mini-batch training of parametric embeddings (``IConEmbedding(batch_size=...)``)."""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sklearn_icon import IConEmbedding
from sklearn_icon._backend.objectives.sampled import SampledNeighborLoss


def reference_batch_loss(Y, anchors, neighbors, kernel, alpha, alpha_q, dof=1.0, temperature=0.5):
    """The same loss in numpy, written from its definition."""
    Y = Y.astype(np.float64)
    m, k = len(anchors), len(Y)
    total = 0.0
    for a, b in zip(anchors, neighbors):
        others = [c for c in range(k) if c != a]
        if kernel == "student_t":
            log_k = -0.5 * (dof + 1) * np.log1p(((Y[others] - Y[a]) ** 2).sum(1) / dof)
        else:
            unit = Y / np.linalg.norm(Y, axis=1, keepdims=True)
            log_k = unit[others] @ unit[a] / temperature
        q = np.exp(log_k - logsumexp(log_k))
        q = (1 - alpha_q) * q + alpha_q / (k - 1)
        log_q = dict(zip(others, np.log(q)))
        total += -(1 - alpha) * log_q[b] - alpha * np.mean(list(log_q.values()))
    return total / m


@pytest.mark.parametrize("kernel", ["student_t", "cosine"])
@pytest.mark.parametrize("alpha,alpha_q", [(0.0, 0.0), (0.3, 0.0), (0.2, 0.4)])
def test_sampled_loss_matches_its_definition(kernel, alpha, alpha_q):
    generator = torch.Generator().manual_seed(0)
    Y = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    anchors = torch.arange(6)
    neighbors = torch.tensor([6, 7, 8, 9, 10, 11])
    loss = SampledNeighborLoss(kernel, alpha=alpha, alpha_q=alpha_q)
    value = loss(Y[:6], Y, anchors, neighbors)
    expected = reference_batch_loss(Y.numpy(), anchors.tolist(), neighbors.tolist(), kernel, alpha, alpha_q)
    assert abs(float(value) - expected) < 1e-10


def test_exaggeration_adds_attraction_to_the_neighbor_only():
    generator = torch.Generator().manual_seed(1)
    Y = torch.randn(10, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    anchors, neighbors = torch.arange(5), torch.arange(5, 10)
    loss = SampledNeighborLoss("student_t")
    (plain,) = torch.autograd.grad(loss(Y[:5], Y, anchors, neighbors), Y)
    exaggerated_loss = loss(Y[:5], Y, anchors, neighbors, exaggeration=4.0)
    (exaggerated,) = torch.autograd.grad(exaggerated_loss, Y)
    log_k = -torch.log1p(((Y[:5] - Y[5:]) ** 2).sum(1))
    (attraction,) = torch.autograd.grad(-log_k.sum() / 5, Y)
    torch.testing.assert_close(exaggerated - plain, 3.0 * attraction)
    # Its value is the plain loss's.
    assert abs(float(exaggerated_loss) - float(loss(Y[:5], Y, anchors, neighbors))) < 1e-12


@pytest.mark.slow
def test_minibatch_embedding_of_digits():
    # Measured: batch_size=256, 1000 steps, mlp: 10-NN accuracy 0.942 in ~10 s
    # (full batch: 0.965 in ~23 s; batch_size=512: 0.952).
    X, y = load_digits(return_X_y=True)
    model = IConEmbedding(mapper="mlp", batch_size=256, random_state=0, device="cpu").fit(X)
    accuracy = cross_val_score(KNeighborsClassifier(10), model.embedding_, y, cv=5).mean()
    assert accuracy >= 0.93
    np.testing.assert_allclose(model.transform(X[:20]), model.embedding_[:20], rtol=1e-6, atol=1e-6)
    again = IConEmbedding(mapper="mlp", batch_size=256, max_iter=50, random_state=0, device="cpu").fit(X[:300])
    same = IConEmbedding(mapper="mlp", batch_size=256, max_iter=50, random_state=0, device="cpu").fit(X[:300])
    np.testing.assert_array_equal(again.embedding_, same.embedding_)


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(batch_size=32), "batch_size needs a parametric mapper"),
        (dict(batch_size=32, mapper="orthonormal", supervisory="identity"), "cannot be used with supervisory='identity'"),
    ],
)
def test_batch_size_refuses_what_it_cannot_train(params, message):
    X = load_digits().data[:60]
    with pytest.raises(ValueError, match=message):
        IConEmbedding(perplexity=5, **params).fit(X)

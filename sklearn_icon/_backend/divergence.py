"""The divergence: KL with ``0 log 0 = 0``, debiasing by the uniform distribution, and their constants.

Debiasing mixes either side with the uniform distribution over the
off-diagonal candidates, ``(1 - alpha) p + alpha u`` (section 3.3 of the
paper); on the learned side the mixture is taken in log space with
``logaddexp``. Each formula is written once here and used by every engine.
"""

import math

import torch


def uniform_mass(n, normalization):
    """Probability the uniform distribution puts on one off-diagonal entry.

    A point is never its own neighbour, so the uniform distribution spreads
    over the ``n - 1`` other points of a row (``normalization="conditional"``)
    or over all ``n (n - 1)`` ordered pairs (``normalization="joint"``).
    """
    return 1.0 / (n - 1) if normalization == "conditional" else 1.0 / (n * (n - 1))


def debias(P, alpha, normalization):
    """Mix a supervisory distribution with the uniform one: ``(1-a) p + a u``.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
    alpha : float in [0, 1]
    normalization : {"conditional", "joint"}

    Returns
    -------
    torch.Tensor of shape (n, n)
        Dense when ``alpha > 0`` (the uniform part touches every pair), else ``P``.
    """
    if alpha == 0:
        return P
    n = P.shape[0]
    dense = P.to_dense() if P.is_sparse else P
    out = (1.0 - alpha) * dense + alpha * uniform_mass(n, normalization)
    out.fill_diagonal_(0.0)
    return out


def mix_uniform(log_q, alpha_q, uniform):
    """Debias a learned distribution in log space: ``log((1 - alpha_q) q + alpha_q u)``.

    Parameters
    ----------
    log_q : torch.Tensor
        ``log q`` over the candidates of each row (or of the whole matrix).
    alpha_q : float in [0, 1)
        Weight of the uniform distribution; ``log_q`` itself is returned at 0.
    uniform : float
        ``u``, the uniform distribution's mass on one candidate.

    Returns
    -------
    torch.Tensor
        ``log q~``, of ``log_q``'s shape; entries that are not candidates
        (a point paired with itself) are the caller's to mask.
    """
    if alpha_q == 0:
        return log_q
    mass = alpha_q * uniform
    # A subnormal alpha_q times u can underflow to zero; its logarithm cannot.
    log_mass = math.log(mass) if mass > 0 else math.log(alpha_q) + math.log(uniform)
    return torch.logaddexp(log_q + math.log1p(-alpha_q), torch.full_like(log_q, log_mass))


def kl_divergence(P, log_q, normalization):
    """``sum p (log p - log q)`` with ``0 log 0 = 0``, averaged over rows if conditional.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Supervisory distribution (rows, or all entries, sum to one).
    log_q : torch.Tensor of shape (n, n)
        Learned log probabilities.
    normalization : {"joint", "conditional"}

    Returns
    -------
    torch.Tensor
        Scalar KL divergence.
    """
    if P.is_sparse:
        P = P.coalesce()
        rows, cols = P.indices()
        p = P.values()
        terms = torch.special.xlogy(p, p) - p * log_q[rows, cols]
        total = terms.sum()
    else:
        support = P > 0
        safe_log_q = torch.where(support, log_q, torch.zeros_like(log_q))
        terms = torch.special.xlogy(P, P) - P * safe_log_q
        total = terms.sum()
    if normalization == "conditional":
        total = total / P.shape[0]
    return total


def label_kl(P, log_q, sample_weight=None):
    """Mean over points of ``KL(p(.|i) || q(.|i))``, with ``0 log 0 = 0``.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n_classes)
        Supervisory distribution, rows summing to one.
    log_q : torch.Tensor of shape (n, n_classes)
        Learned log-distribution.
    sample_weight : torch.Tensor of shape (n,), optional
        Weights of the mean (their sum must be positive).

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    support = P > 0
    cross = torch.where(support, P * log_q, torch.zeros_like(log_q))
    per_point = (torch.special.xlogy(P, P) - cross).sum(1)
    if sample_weight is None:
        return per_point.mean()
    return (sample_weight * per_point).sum() / sample_weight.sum()


def debiased_entropy(p_data, uniform_weight, n_candidates, multiplicity=1):
    """``sum p~ log p~`` of a debiased sparse ``p~ = (1 - alpha) p + alpha u`` over its candidates.

    Parameters
    ----------
    p_data : torch.Tensor of shape (nnz,)
        ``(1 - alpha) p`` on the stored entries of ``p``.
    uniform_weight : float
        ``alpha u``, what every candidate pair receives from the uniform part.
    n_candidates : int or float
        Pairs the uniform part covers (``n (n - 1)``, or ``n^2`` when a
        point is its own candidate); those outside ``p``'s entries hold
        ``alpha u`` alone.
    multiplicity : int, default=1
        Candidate pairs each stored entry stands for (2 when only one
        triangle of a symmetric ``p`` is stored).

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    mixed = p_data + uniform_weight
    stored = multiplicity * torch.special.xlogy(mixed, mixed).sum()
    return stored + (n_candidates - multiplicity * p_data.numel()) * _xlogx(uniform_weight)


def _xlogx(value):
    return value * math.log(value) if value > 0 else 0.0

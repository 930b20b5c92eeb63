"""Bandwidths of the supervisory kernels: calibrated per point to a perplexity, or fixed."""

import math

import torch


def _log_kernel(dist, precision, kernel):
    """Unnormalised log affinities of a supervisory kernel at a precision."""
    if kernel == "gaussian":
        return -precision * dist
    if kernel == "student_t":
        return -torch.log1p(precision * dist)
    raise ValueError(f"Kernel {kernel!r} has no bandwidth to calibrate.")


def calibrate_to_perplexity(dist, perplexity, kernel="gaussian", tol=1e-5, max_iter=100, return_precision=False):
    """Per-point bandwidths that give each row the requested perplexity.

    A vectorised bisection on the precision ``beta_i`` of every row at once,
    as t-SNE does: ``p(j|i)`` is proportional to ``exp(-beta_i d_ij)`` for the
    Gaussian kernel and to ``1 / (1 + beta_i d_ij)`` for the Student-t
    (Cauchy) kernel, and ``beta_i`` is chosen so that the entropy of
    ``p(.|i)`` equals ``log(perplexity)``. Computed in float64.

    Parameters
    ----------
    dist : torch.Tensor of shape (n, k)
        Kernel inputs from each point to its candidate neighbours; ``inf``
        marks a non-neighbour.
    perplexity : float
        Target perplexity, smaller than ``k``.
    kernel : {"gaussian", "student_t"}, default="gaussian"
        Kernel shape.
    tol : float, default=1e-5
        Tolerance on the entropy, in nats.
    max_iter : int, default=100
        Bisection steps.
    return_precision : bool, default=False
        Also return the precisions ``beta``.

    Returns
    -------
    torch.Tensor of shape (n, k)
        Row-stochastic conditional probabilities, in ``dist``'s dtype.
    precision : torch.Tensor of shape (n,)
        ``beta`` per row, in float64; only with ``return_precision``.
    """
    d = dist.to(torch.float64)
    target = math.log(perplexity)
    # Start each row at the inverse of its mean finite kernel input, close
    # to the answer whatever the data's scale, so the bisection needs fewer
    # doublings or halvings to bracket it.
    finite = torch.isfinite(d)
    mean = torch.where(finite, d, torch.zeros_like(d)).sum(1) / finite.sum(1).clamp_min(1)
    beta = torch.where(mean > 0, 1.0 / mean, torch.ones_like(mean))
    lo = torch.zeros_like(beta)
    hi = torch.full_like(beta, math.inf)
    searching = torch.ones_like(beta, dtype=torch.bool)
    for _ in range(max_iter):
        # H = log Z - sum_j p_j log k_j; a non-neighbour's log k of -inf
        # becomes a finite floor so that 0 * log k stays 0.
        log_k = _log_kernel(d, beta[:, None], kernel).clamp_min_(-1e300)
        log_norm = torch.logsumexp(log_k, dim=1)
        entropy = log_norm - (torch.exp(log_k - log_norm[:, None]) * log_k).sum(1)
        diff = entropy - target
        # A row stops at its own first precision within tol, so that its
        # result does not depend on how long the other rows take.
        searching = searching & (diff.abs() > tol)
        if not bool(searching.any()):
            break
        too_flat = diff > 0
        lo = torch.where(searching & too_flat, beta, lo)
        hi = torch.where(searching & ~too_flat, beta, hi)
        beta = torch.where(searching, torch.where(torch.isinf(hi), beta * 2.0, (lo + hi) / 2.0), beta)
    log_p = torch.log_softmax(_log_kernel(d, beta[:, None], kernel), dim=1)
    P = log_p.exp().to(dist.dtype)
    return (P, beta) if return_precision else P


def fixed_bandwidth_affinity(dist, bandwidth, kernel="gaussian"):
    """Conditional affinities with one bandwidth shared by all points.

    Parameters
    ----------
    dist : torch.Tensor of shape (n, k)
        Kernel inputs; ``inf`` marks a non-neighbour (e.g. the point itself).
    bandwidth : float
        ``sigma``: the Gaussian is ``exp(-d / (2 sigma^2))``, the Student-t
        (Cauchy) kernel ``1 / (1 + d / sigma^2)``.
    kernel : {"gaussian", "student_t"}, default="gaussian"

    Returns
    -------
    torch.Tensor of shape (n, k)
        Row-stochastic conditional probabilities.
    """
    precision = 1.0 / (2.0 * bandwidth**2) if kernel == "gaussian" else 1.0 / bandwidth**2
    return torch.softmax(_log_kernel(dist, precision, kernel), dim=1)

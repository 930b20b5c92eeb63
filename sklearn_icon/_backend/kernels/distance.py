"""Learned kernels on embeddings, as unnormalised log affinities, and their normalisation into log q."""

import math

import torch

from ..divergence import mix_uniform, uniform_mass

LEARNED_KERNELS = ("student_t", "gaussian", "cosine")


#: Kernels that are a function of the squared embedding distance alone; the
#: exact objective has a closed-form gradient for them.
DISTANCE_KERNELS = ("student_t", "gaussian")


def squared_distances(Y, other=None):
    """Squared Euclidean distances between the rows of ``Y`` and those of ``other`` (default ``Y``).

    Both are centred on ``other``'s mean first: the distances do not
    change, and the expansion ``|a|^2 + |b|^2 - 2 a.b`` loses less precision
    near the origin.
    """
    centre = (Y if other is None else other).mean(0, keepdim=True)
    A = Y - centre
    B = A if other is None else other - centre
    return torch.addmm((A * A).sum(1, keepdim=True) + (B * B).sum(1)[None, :], A, B.T, alpha=-2.0).clamp_min(0.0)


def log_kernel_matrix(Y, kernel, dof=1.0, temperature=0.5, other=None):
    """Unnormalised log affinities ``log k(y_i, y_j)`` between all embeddings.

    Parameters
    ----------
    Y : torch.Tensor of shape (n, n_components)
        Embeddings.
    kernel : {"student_t", "gaussian", "cosine"}
        ``student_t``: ``(1 + d^2 / dof)^(-(dof + 1) / 2)``, the Cauchy kernel
        of t-SNE when ``dof=1``; ``gaussian``: ``exp(-d^2 / (2 temperature))``,
        SNE's ``exp(-d^2)`` at the default temperature; ``cosine``:
        ``exp(cos(y_i, y_j) / temperature)`` as in InfoNCE.
    dof : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    temperature : float, default=0.5
        Temperature of the cosine kernel; the squared width ``sigma^2`` of
        the Gaussian one.
    other : torch.Tensor of shape (m, n_components), optional
        Compare ``Y`` with these embeddings instead of with itself.

    Returns
    -------
    torch.Tensor of shape (n, n), or (n, m) with ``other``
        Log affinities; the self pairs are left to the caller to mask.
    """
    if kernel == "student_t":
        return -0.5 * (dof + 1.0) * torch.log1p(squared_distances(Y, other) / dof)
    if kernel == "gaussian":
        return squared_distances(Y, other) / (-2.0 * temperature)
    if kernel == "cosine":
        Yn = Y / Y.norm(dim=1, keepdim=True).clamp_min(1e-12)
        On = Yn if other is None else other / other.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (Yn @ On.T) / temperature
    raise ValueError(f"Unknown learned kernel {kernel!r}; expected one of {LEARNED_KERNELS}.")


def distance_kernel_terms(kernel, dof):
    """Split a distance kernel into the pieces its closed-form gradient needs.

    For ``student_t`` the kernel base is ``b = 1 / (1 + d^2 / dof)``; the
    kernel is ``k = b^((dof + 1) / 2)`` and ``w = -d log k / d(d^2) = c b``
    with ``c = (dof + 1) / (2 dof)``. For ``gaussian`` the base is ``k``
    itself and ``w = 1``.

    Returns
    -------
    k_power : float
        Exponent turning ``base`` into ``k``.
    c : float
        Constant factor of ``w``.
    """
    if kernel == "student_t":
        return 0.5 * (dof + 1.0), 0.5 * (dof + 1.0) / dof
    return 1.0, 1.0


NORMALIZATIONS = ("joint", "conditional")


def log_q_from_log_kernel(log_k, normalization, alpha_q=0.0, include_self=False):
    """Normalise unnormalised log affinities into log ``q``, with debiasing.

    Parameters
    ----------
    log_k : torch.Tensor of shape (n, n)
        Unnormalised log affinities; the diagonal is ignored unless
        ``include_self``.
    normalization : {"joint", "conditional"}
    alpha_q : float in [0, 1), default=0.0
        Weight of the uniform distribution mixed into ``q``.
    include_self : bool, default=False
        Keep the self pairs ``(i, i)`` in ``q``, as PCA's ``p(j|i) = 1[i = j]``
        needs; the uniform part of debiasing stays over the other points.

    Returns
    -------
    torch.Tensor of shape (n, n)
        ``log q``, with ``-inf`` on the diagonal unless ``include_self``.
    """
    n = log_k.shape[0]
    diagonal = torch.eye(n, dtype=torch.bool, device=log_k.device)
    masked = log_k if include_self else log_k.masked_fill(diagonal, -math.inf)
    if normalization == "conditional":
        log_q = torch.log_softmax(masked, dim=1)
    else:
        log_q = masked - torch.logsumexp(masked.reshape(-1), dim=0)
    if alpha_q > 0:
        mixed = mix_uniform(log_q, alpha_q, uniform_mass(n, normalization))
        # The uniform part has no self pair: the diagonal keeps q's own share.
        log_q = torch.where(diagonal, log_q + math.log1p(-alpha_q) if include_self else -math.inf, mixed)
    return log_q

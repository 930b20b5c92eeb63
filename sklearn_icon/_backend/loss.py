"""The I-Con loss: KL divergence between supervisory and learned neighbourhoods.

Two normalisations are supported:

``"conditional"``
    I-Con's own form, ``L = mean_i KL(p(.|i) || q(.|i))`` with ``q``
    normalised per row.
``"joint"``
    t-SNE's form, ``L = KL(P || Q)`` with ``P`` a joint distribution over
    ordered pairs (symmetrised conditionals) and ``Q`` normalised over all
    pairs.

Debiasing mixes either side with the uniform distribution over the
off-diagonal candidates, ``(1 - alpha) p + alpha u`` (section 3.3 of the
paper); on the learned side the mixture is taken in log space with
``logaddexp``. ``0 log 0`` counts as zero throughout.
"""

import math

import torch

from .learned import DISTANCE_KERNELS, distance_kernel_terms, log_kernel_matrix
from .supervisory import debias, uniform_mass

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
        log_uniform = math.log(alpha_q * uniform_mass(n, normalization))
        kept = log_q + math.log1p(-alpha_q)
        mixed = torch.logaddexp(kept, torch.full_like(log_q, log_uniform))
        # The uniform part has no self pair: the diagonal keeps q's own share.
        log_q = torch.where(diagonal, kept if include_self else -math.inf, mixed)
    return log_q


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


def icon_loss(
    P,
    Y,
    *,
    learned="student_t",
    normalization="joint",
    alpha=0.0,
    alpha_q=0.0,
    dof=1.0,
    temperature=0.5,
):
    """Exact I-Con loss of embeddings ``Y`` against a supervisory ``P``.

    Differentiable with autograd; the reference every faster path is tested
    against.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Supervisory distribution, already in the chosen normalisation.
    Y : torch.Tensor of shape (n, n_components)
        Embeddings.
    learned : {"student_t", "gaussian", "cosine"}, default="student_t"
    normalization : {"joint", "conditional"}, default="joint"
    alpha, alpha_q : float, default=0.0
        Debiasing weights on ``p`` and ``q``.
    dof, temperature : float
        Kernel parameters, see :func:`log_kernel_matrix`.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    P = debias(P, alpha, normalization)
    log_k = log_kernel_matrix(Y, learned, dof=dof, temperature=temperature)
    return kl_divergence(P, log_q_from_log_kernel(log_k, normalization, alpha_q), normalization)


class DistanceKernelObjective:
    """Exact I-Con loss and its closed-form gradient for distance kernels.

    For a learned kernel ``k(d^2)`` of the squared embedding distance, the
    gradient of the loss is ``2 sum_j (G_ij + G_ji) (y_i - y_j)`` with
    ``G = (p - q) w`` and ``w = -d log k / d(d^2)``; for t-SNE this is the
    familiar ``4 sum_j (p_ij - q_ij) (1 + d_ij^2)^-1 (y_i - y_j)``. Everything
    is dense and computed in place in two reused ``n x n`` buffers, one
    matrix product giving all distances and one giving the gradient; the
    loss itself is only evaluated when asked for (it needs a logarithm of
    every pair).

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Supervisory distribution in the chosen normalisation, on the device
        and in the dtype of the embeddings.
    kernel : {"student_t", "gaussian"}
    normalization : {"joint", "conditional"}
    alpha : float, default=0.0
        Debiasing of ``p``.
    dof : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    temperature : float, default=0.5
        Squared width of the Gaussian kernel, ``exp(-d^2 / (2 temperature))``.
    """

    def __init__(self, P, kernel, normalization, alpha=0.0, dof=1.0, temperature=0.5):
        if kernel not in DISTANCE_KERNELS:
            raise ValueError(f"Closed-form gradient needs a distance kernel, got {kernel!r}.")
        self.kernel, self.normalization, self.dof = kernel, normalization, float(dof)
        # A Gaussian of squared width T on Y is the unit one, exp(-d^2), on
        # Y / sqrt(2 T): the closed form below works on the rescaled points.
        self.y_scale = 1.0 if kernel == "student_t" else (2.0 * float(temperature)) ** -0.5
        P = debias(P, alpha, normalization)
        self.P = P.to_dense() if P.is_sparse else P
        n = self.P.shape[0]
        if normalization == "joint":
            # P is symmetric: G_ij + G_ji = 2 G_ij.
            self.attraction = self.P
            self.uniform_attraction = alpha * uniform_mass(n, normalization)
        else:
            self.attraction = (self.P + self.P.T) / n
            self.uniform_attraction = 2.0 * alpha * uniform_mass(n, normalization) / n
        self.entropy = torch.special.xlogy(self.P, self.P).sum()
        self._base = torch.empty_like(self.P)
        self._work = torch.empty_like(self.P)
        self.k_power, self.w_scale = distance_kernel_terms(kernel, self.dof)

    def _kernel_base(self, Y):
        """Fill the base buffer with ``b = 1/(1 + d^2/dof)`` or the shifted Gaussian ``k``."""
        n = Y.shape[0]
        sq = (Y * Y).sum(1, keepdim=True)
        ones = torch.ones((n, 1), dtype=Y.dtype, device=Y.device)
        left = torch.cat([Y, sq, ones], 1)
        base = self._base
        if self.kernel == "student_t":
            # One matrix product gives 1 + d^2 / dof for every pair.
            right = torch.cat([-2.0 * Y / self.dof, ones / self.dof, 1.0 + sq / self.dof], 1)
            torch.mm(left, right.T, out=base)
            base.diagonal().fill_(math.inf)
            return base.reciprocal_()
        right = torch.cat([2.0 * Y, -ones, -sq], 1)
        torch.mm(left, right.T, out=base)  # -d^2
        base.diagonal().fill_(-math.inf)
        # One global shift keeps the matrix symmetric and exp from underflowing.
        return base.sub_(base.max()).exp_()

    def loss(self, Y):
        """The exact loss at ``Y`` (a scalar tensor)."""
        return self._loss_of_scaled(Y * self.y_scale)

    def _loss_of_scaled(self, Y):
        log_k = log_kernel_matrix(Y, self.kernel, dof=self.dof)
        return kl_divergence(self.P, log_q_from_log_kernel(log_k, self.normalization), self.normalization)

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        """Loss and gradient at embeddings ``Y``.

        Parameters
        ----------
        Y : torch.Tensor of shape (n, n_components)
        exaggeration : float, default=1.0
            Factor on the data's part of ``p``, ``(1 - alpha) p``, in the
            gradient (t-SNE's early exaggeration); the uniform part of
            debiasing keeps weight one, else it would pull every pair
            ``exaggeration`` times harder and collapse the embedding. The
            returned loss is always that of the plain ``p``.
        compute_loss : bool, default=True
            Skip the loss when False (``nan`` is returned).

        Returns
        -------
        loss : torch.Tensor or float
            Scalar tensor, or ``nan`` when ``compute_loss`` is False.
        grad : torch.Tensor of shape (n, n_components)
        """
        n, d = Y.shape
        Y = (Y - Y.mean(0, keepdim=True)) * self.y_scale
        base = self._kernel_base(Y)
        loss = math.nan
        M = self._work
        joint = self.normalization == "joint"
        student = self.kernel == "student_t"
        if student and self.dof == 1.0 and joint:
            # t-SNE: w = k = b, so M = b (e P - b / Z) in two passes.
            mass = base.sum()
            if compute_loss:
                loss = self._loss_from_kernel(base, mass)
            torch.add(self.attraction, base, alpha=-1.0 / (exaggeration * mass), out=M)
            if self.uniform_attraction and exaggeration != 1.0:
                # Diagonal entries of M cancel in the gradient: no mask needed.
                M.sub_((exaggeration - 1.0) / exaggeration * self.uniform_attraction)
            M.mul_(base)
            scale = 4.0 * exaggeration
        else:
            if student:
                torch.pow(base, self.k_power, out=M)  # k
            else:
                M.copy_(base)
            mass = M.sum(1)
            if compute_loss:
                loss = self._loss_from_kernel(M, mass.sum() if joint else mass)
            if student:
                M.mul_(base)  # k w / c
            if joint:
                M.mul_(-1.0 / mass.sum())
                scale = 4.0 * self.w_scale
            else:
                inverse = 1.0 / (n * mass)
                across = M * inverse[None, :]
                M.mul_(inverse[:, None]).add_(across).neg_()
                scale = 2.0 * self.w_scale
            unexaggerated = (exaggeration - 1.0) * self.uniform_attraction
            if student:
                M.addcmul_(self.attraction, base, value=exaggeration)
                if unexaggerated:
                    M.add_(base, alpha=-unexaggerated)
            else:
                M.add_(self.attraction, alpha=exaggeration)
                if unexaggerated:
                    M.sub_(unexaggerated)
        ones = torch.ones((n, 1), dtype=Y.dtype, device=Y.device)
        if compute_loss and loss is None:
            loss = self._loss_of_scaled(Y)
        # M is symmetric; the transposed product is the faster one on CPU.
        r = (torch.cat([Y, ones], 1).T @ M).T
        grad = scale * self.y_scale * (r[:, d:] * Y - r[:, :d])
        return loss, grad

    def _loss_from_kernel(self, kernel, mass):
        """The loss from the kernel matrix and its row (or total) masses.

        ``xlogy`` makes ``0 log 0 = 0`` on the diagonal and wherever ``p`` is
        zero. Falls back to the log-space reference if a kernel value that
        ``p`` needs underflowed.
        """
        cross = torch.special.xlogy(self.P, kernel).sum()
        log_norm = torch.log(mass).sum()
        if not torch.isfinite(cross):
            return None
        if self.normalization == "joint":
            return self.entropy - cross + log_norm
        return (self.entropy - cross + log_norm) / self.P.shape[0]

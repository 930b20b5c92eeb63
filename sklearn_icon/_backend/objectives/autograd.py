"""The exact I-Con loss for any learned kernel, by autograd; the reference of every faster path."""

import math

import torch

from ..divergence import debias, kl_divergence, uniform_mass
from ..kernels.distance import log_kernel_matrix, log_q_from_log_kernel


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


class AutogradObjective:
    """Exact I-Con loss and its gradient by autograd, for any learned kernel.

    Early exaggeration is applied to the gradient with respect to the log
    affinities ``log k_ij``: the loss's gradient there is the attraction
    ``-(1 - alpha) p_ij r_ij`` of the data's part of ``p~`` plus what the
    uniform part and the normaliser contribute, where ``r_ij`` is the share
    of ``q~_ij`` owed to the kernel (1 without ``alpha_q``). Exaggeration
    multiplies the attraction only, which for an undebiased ``q`` is
    t-SNE's ``e p_ij - q_ij``.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Supervisory distribution in the chosen normalisation. When it puts
        mass on the diagonal (PCA's ``p(j|i) = 1[i = j]``), ``q`` includes
        the self pairs too.
    kernel : {"student_t", "gaussian", "cosine"}
    normalization : {"joint", "conditional"}
    alpha, alpha_q : float, default=0.0
        Debiasing of ``p`` and of ``q``.
    dof, temperature : float
        Kernel parameters.
    """

    def __init__(self, P, kernel, normalization, alpha=0.0, alpha_q=0.0, dof=1.0, temperature=0.5):
        P = P.to_dense() if P.is_sparse else P
        debiased = debias(P, alpha, normalization)
        self.entropy = float(torch.special.xlogy(debiased, debiased).sum())
        # The data's part and the uniform part of p~ = (1 - alpha) p + alpha u
        # are kept apart: exaggeration multiplies the first only.
        self.P, self.alpha = P, float(alpha)
        self.support = self.P > 0
        self.include_self = bool(self.P.diagonal().sum() > 0)
        self.kernel, self.normalization = kernel, normalization
        self.alpha_q, self.dof, self.temperature = alpha_q, dof, temperature

    def _log_q(self, log_k, alpha_q):
        return log_q_from_log_kernel(log_k, self.normalization, alpha_q, include_self=self.include_self)

    def _cross_entropy(self, log_q):
        """``-sum p~ log q~`` split as (data's part, uniform part), per-anchor means if conditional."""
        n = log_q.shape[0]
        safe = torch.where(self.support, log_q, torch.zeros_like(log_q))
        cross_data = -(self.P * safe).sum()
        cross_uniform = log_q.new_zeros(())
        if self.alpha > 0:
            off_diagonal = ~torch.eye(n, dtype=torch.bool, device=log_q.device)
            cross_uniform = -uniform_mass(n, self.normalization) * log_q[off_diagonal].sum()
        if self.normalization == "conditional":
            cross_data, cross_uniform = cross_data / n, cross_uniform / n
        return cross_data, cross_uniform

    def _loss(self, cross_data, cross_uniform, n):
        cross_entropy = (1.0 - self.alpha) * cross_data + self.alpha * cross_uniform
        return cross_entropy + self.entropy * (1.0 if self.normalization == "joint" else 1.0 / n)

    def loss(self, Y):
        """The exact loss at ``Y`` (a scalar tensor)."""
        with torch.no_grad():
            log_k = log_kernel_matrix(Y, self.kernel, dof=self.dof, temperature=self.temperature)
            cross_data, cross_uniform = self._cross_entropy(self._log_q(log_k, self.alpha_q))
        return self._loss(cross_data, cross_uniform, Y.shape[0])

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        """Loss and gradient at ``Y``; see the module docstring."""
        n = Y.shape[0]
        with torch.enable_grad():
            Y = Y.detach().requires_grad_(True)
            log_k = log_kernel_matrix(Y, self.kernel, dof=self.dof, temperature=self.temperature)
            logits = log_k.detach().requires_grad_(True)
            log_q = self._log_q(logits, self.alpha_q)
            cross_data, cross_uniform = self._cross_entropy(log_q)
            loss = self._loss(cross_data, cross_uniform, n)
            (grad_logits,) = torch.autograd.grad(loss, logits)
            if exaggeration != 1.0:
                with torch.no_grad():
                    attraction = self.P * (1.0 - self.alpha)
                    if self.alpha_q > 0:
                        kernel_share = self._log_q(logits, 0.0) + math.log1p(-self.alpha_q) - log_q
                        attraction = attraction * torch.where(self.support, kernel_share, 0.0).exp()
                    if self.normalization == "conditional":
                        attraction = attraction / n
                    grad_logits -= (exaggeration - 1.0) * attraction
            (grad,) = torch.autograd.grad(log_k, Y, grad_logits)
        return loss.detach(), grad

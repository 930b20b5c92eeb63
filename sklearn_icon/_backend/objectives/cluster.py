"""The I-Con loss of the cluster kernels over the whole data set, or a sampled batch of it.

The loss needs ``q`` only on the edges of a sparse ``p`` and the cluster
masses (see :mod:`..kernels.cluster`): ``O(nnz(p) C + n C)``, never
``n x n``; the uniform part of a debiased ``p`` is summed over all pairs
in row blocks. :class:`ExactClusterObjective` and
:class:`SampledClusterObjective` are what :func:`~..training.train_assignments`
steps on.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..affinities.neighbors import kernel_input_distances
from ..divergence import debiased_entropy, mix_uniform
from ..kernels.cluster import (
    EdgeList,
    _factors,
    _log_q_blocks,
    cluster_log_q,
    log_neighbor_factor,
    shifted_factors,
)

#: ``softplus`` is linear past this; ``e^-40`` is below float64's resolution of 1.
_SOFTPLUS_THRESHOLD = 40.0


def _logit_of_share(dot, shift_rows, shift_b, alpha_q, n):
    """``z = log((1 - alpha_q) q / (alpha_q / n))`` on a block, in place over the floored ``log dot``.

    Then ``log q~ = log(alpha_q / n) + softplus(z)`` and the kernel's share
    of ``q~``, ``d log q~ / d log q``, is ``sigmoid(z)``.
    """
    offset = math.log1p(-alpha_q) - math.log(alpha_q / n)
    z = dot.clamp_min_(torch.finfo(dot.dtype).tiny).log_()
    return z.add_(shift_rows[:, None]).add_(shift_b[None, :] + offset)


class _AllPairsLogQ(torch.autograd.Function):
    """``sum_{i,j} log q~(j|i)`` over every pair from the factors of :func:`_factors`.

    Runs in row blocks of ``block_size`` and recomputes each block in the
    backward pass. Without ``alpha_q`` the shifts leave the pairs:
    ``sum_ij log q = n sum_i s_i + n sum_j t_j + sum_ij log(a_i . b_j)``, so
    a block costs a product, a logarithm and a sum forward, and a
    reciprocal and two products backward. Autograd through the same loop
    kept every block's intermediates and walked them back one operation at
    a time, which measured slower (benchmarks/RESULTS.md).
    """

    @staticmethod
    def forward(ctx, a, shift_a, b, shift_b, alpha_q, block_size):
        ctx.save_for_backward(a, shift_a, b, shift_b)
        ctx.alpha_q, ctx.block_size = alpha_q, block_size
        n = a.shape[0]
        tiny = torch.finfo(a.dtype).tiny
        if alpha_q == 0:
            total = n * (shift_a.sum() + shift_b.sum())
        else:
            total = a.new_zeros(())
        for start in range(0, n, block_size):
            stop = min(n, start + block_size)
            dot = a[start:stop] @ b.T
            if alpha_q == 0:
                # The floor of _log_of_dot.
                total += dot.clamp_min_(tiny).log_().sum()
            else:
                z = _logit_of_share(dot, shift_a[start:stop], shift_b, alpha_q, n)
                total += F.softplus(z, threshold=_SOFTPLUS_THRESHOLD).sum() + z.numel() * math.log(alpha_q / n)
        return total

    @staticmethod
    def backward(ctx, grad):
        a, shift_a, b, shift_b = ctx.saved_tensors
        n, alpha_q = a.shape[0], ctx.alpha_q
        grad_a, grad_shift_a = torch.empty_like(a), torch.empty_like(shift_a)
        grad_b, grad_shift_b = torch.zeros_like(b), torch.zeros_like(shift_b)
        tiny = torch.finfo(a.dtype).tiny
        for start in range(0, n, ctx.block_size):
            stop = min(n, start + ctx.block_size)
            dot = a[start:stop] @ b.T
            share = None
            if alpha_q > 0:
                share = _logit_of_share(dot.clone(), shift_a[start:stop], shift_b, alpha_q, n).sigmoid_()
            # d log q / d dot = 1 / dot, zero where the floor held.
            floored = dot < tiny if float(dot.min()) < tiny else None
            weight = dot.reciprocal_()
            if floored is not None:
                weight.masked_fill_(floored, 0.0)
            if share is None:
                grad_shift_a[start:stop] = n
                grad_shift_b += stop - start
            else:
                weight.mul_(share)
                grad_shift_a[start:stop] = share.sum(1)
                grad_shift_b += share.sum(0)
            grad_a[start:stop] = weight @ b
            grad_b.addmm_(weight.T, a[start:stop])
        return grad * grad_a, grad * grad_shift_a, grad * grad_b, grad * grad_shift_b, None, None


class _EdgeCrossEntropy(torch.autograd.Function):
    """``sum_e p_e log q~(j_e|i_e)`` over the edges of ``p``, with a closed-form gradient in ``log phi``.

    With the shifted factors of :func:`_factors` (``q = e^(s_i + t_j) a_i . b_j``),
    ``psi`` the neighbour factor ``phi_jc d_j / M_c`` and ``v_e = p_e
    share_e / (a_i . b_j)`` (``share`` the kernel's part of ``q~``, one
    without ``alpha_q``), the gradient with respect to ``log phi`` is

        a * (V b) + b * (V^T a) - psi * colsum(a * (V b)),

    the anchor's, the neighbour's and the cluster masses' share: one
    sampled product and two sparse products over the edges per step, where
    autograd through gathers walked ``nnz(p) x C`` intermediates.
    """

    @staticmethod
    def forward(ctx, log_phi, log_degree, p, edges, alpha_q):
        log_psi = log_neighbor_factor(log_phi, log_degree)
        a, shift_a, b, shift_b = shifted_factors(log_phi, log_psi)
        dot = edges.dot(a, b)
        tiny = torch.finfo(dot.dtype).tiny
        # One reduction finds whether the floor holds anywhere; the mask is built only then.
        floored = dot < tiny if float(dot.min()) < tiny else None
        log_dot = dot.clamp_min(tiny).log_()
        weight = p / dot
        if alpha_q > 0:
            log_q = log_dot + shift_a.index_select(0, edges.rows) + shift_b.index_select(0, edges.cols)
            mixed = mix_uniform(log_q, alpha_q, 1.0 / log_phi.shape[0])
            weight *= (math.log1p(-alpha_q) + log_q - mixed).exp_()
            total = (p * mixed).sum()
        else:
            # The shifts leave the edges: sum_e p_e (s_i + t_j) is two dot products with p's margins.
            total = torch.dot(p, log_dot) + edges.row_mass @ shift_a + edges.col_mass @ shift_b
        if floored is not None:
            weight.masked_fill_(floored, 0.0)
        ctx.save_for_backward(a, b, log_psi, weight)
        ctx.edges, ctx.plain_kernel = edges, log_degree is None
        return total

    @staticmethod
    def backward(ctx, grad):
        a, b, log_psi, weight = ctx.saved_tensors
        edges = ctx.edges
        anchor = a * edges.product(weight, b)
        if edges.symmetric and ctx.plain_kernel:
            # q is symmetric and so are p's edges: the neighbour's share is the anchor's.
            neighbor = anchor
        else:
            neighbor = b * edges.product(weight, a, transpose=True)
        mass = log_psi.exp() * anchor.sum(0)
        return grad * (anchor + neighbor - mass), None, None, None, None


def _sum_log_q_all_pairs(log_phi, log_degree, alpha_q, block_size):
    """``sum_{i,j} log q~(j|i)`` over every pair, a row block at a time."""
    a, shift_a, b, shift_b = _factors(log_phi, log_degree)
    return _AllPairsLogQ.apply(a, shift_a, b, shift_b, float(alpha_q), int(block_size))


def cluster_loss(
    P, log_phi, *, alpha=0.0, alpha_q=0.0, log_degree=None, block_size=1024, edges=None, entropy=None
):
    """Exact ``mean_i KL(p~(.|i) || q~(.|i))`` for a cluster kernel.

    ``p~ = (1 - alpha) p + alpha / n``. The ``alpha = 0`` loss costs
    ``O(nnz(p) C + n C)``. The uniform part of ``p~`` puts mass on every
    pair, so for ``alpha > 0`` the cross-entropy against it is summed over
    all ``n^2`` pairs in row blocks: ``O(n^2 C)`` time but only
    ``O(block_size n)`` memory.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), sparse COO
        Row-stochastic supervisory distribution with a zero diagonal.
    log_phi : torch.Tensor of shape (n, n_clusters)
        Log soft assignments.
    alpha, alpha_q : float, default=0.0
        Debiasing of ``p`` and of ``q``.
    log_degree : torch.Tensor of shape (n,), optional
        Log degrees for the ``cluster_degree`` kernel.
    block_size : int, default=1024
    edges : EdgeList, optional
        ``EdgeList.from_sparse(P)``, prepared once for repeated calls; the
        loss then has a closed-form gradient (:class:`_EdgeCrossEntropy`).
    entropy : float, optional
        The entropy of the debiased ``p`` (:func:`~..divergence.debiased_entropy`),
        which no step changes: given once, it is not recomputed.

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``log_phi``.
    """
    n = log_phi.shape[0]
    P = P.coalesce()
    rows, cols = P.indices()
    p = P.values().to(log_phi.dtype)
    if edges is None:
        log_q_edges = cluster_log_q(log_phi, rows, cols, log_degree=log_degree, alpha_q=alpha_q)
        cross = (p * log_q_edges).sum()
    else:
        cross = _EdgeCrossEntropy.apply(log_phi, log_degree, p, edges, float(alpha_q))
    u = alpha / n
    # q counts a point as its own candidate: the uniform part covers all n^2 pairs.
    if entropy is None:
        entropy = debiased_entropy((1.0 - alpha) * p, u, n * n)
    if u > 0:
        cross = (1.0 - alpha) * cross + u * _sum_log_q_all_pairs(log_phi, log_degree, alpha_q, block_size)
    return (entropy - cross) / n


def prepared_cluster_loss(P, *, alpha=0.0, alpha_q=0.0, log_degree=None, row_weight=None):
    """:func:`cluster_loss` of ``P`` as a function of ``log_phi`` alone, for a fit's repeated calls.

    The edge layouts and the entropy of the debiased ``p``, which no step
    changes, are computed here once.

    ``row_weight`` (shape ``(n,)``, mean one, needs ``alpha = 0``) weighs
    each point's divergence, ``sum_i w_i KL(p_i || q_i) / n``: the edges of
    row ``i`` are scaled by ``w_i``. The weights of the neighbours belong in
    ``P`` (:func:`~..affinities.graphs.weight_neighbors`) and in the cluster
    masses (``log_degree``).
    """
    P = P.coalesce()
    n = P.shape[0]
    if row_weight is None:
        entropy = debiased_entropy((1.0 - alpha) * P.values(), alpha / n, n * n)
        edges = None
        if log_degree is None:
            # The plain kernel's q is symmetric, so sum p log q = sum s log q for s = (p + p^T) / 2,
            # and on s's symmetric edges one product gives the gradient where p's need two.
            # A pattern that is not symmetric would gain edges: it is kept as it is.
            symmetric = (0.5 * (P + P.t())).coalesce()
            if symmetric._nnz() == P._nnz():
                P, edges = symmetric, EdgeList.from_sparse(symmetric, symmetric=True)
        if edges is None:
            edges = EdgeList.from_sparse(P)
    else:
        if alpha > 0:
            raise ValueError("Row weights need alpha=0: the uniform part of debiasing has no weighted form here.")
        conditional = P.values()
        edge_weight = row_weight.to(P.dtype)[P.indices()[0]]
        # Rows of weight zero leave the loss, their edges with them.
        keep = edge_weight > 0
        conditional, edge_weight = conditional[keep], edge_weight[keep]
        P = torch.sparse_coo_tensor(
            P.indices()[:, keep], conditional * edge_weight, P.shape, check_invariants=False
        ).coalesce()
        edges = EdgeList.from_sparse(P)
        # sum_i w_i sum_j p_ij log p_ij
        entropy = (edge_weight * torch.special.xlogy(conditional, conditional)).sum()

    def loss(log_phi):
        return cluster_loss(
            P, log_phi, alpha=alpha, alpha_q=alpha_q, log_degree=log_degree, edges=edges, entropy=entropy
        )

    return loss


def gaussian_log_normalizers(X, bandwidth, block_size=1024):
    """``log Z_i = log sum_j exp(-|x_i - x_j|^2 / (2 bandwidth^2))`` over all ``j``, ``i`` included.

    The normalisers of Theorem 13's Gaussian ``p``; they do not depend on
    the assignments, so a fit computes them once, in row blocks.
    """
    out = []
    for start in range(0, X.shape[0], block_size):
        squared = kernel_input_distances(X[start : start + block_size], X, "euclidean")
        out.append(torch.logsumexp(-squared / (2.0 * bandwidth**2), dim=1))
    return torch.cat(out)


def csne_loss(X, log_phi, bandwidth, *, log_normalizers=None, block_size=1024):
    """Theorem 13's c-SNE loss, ``sum_i KL(q(.|i) || p(.|i))``: k-means as I-Con.

    ``p(j|i)`` is a Gaussian of fixed ``bandwidth`` over all points and
    ``q`` the shared-cluster kernel; both include ``j = i`` (the theorem's
    ``q`` puts mass on ``i`` itself, so ``p`` must too for the divergence to
    be finite). Per point,

        KL(q_i || p_i) = sum_j q_ij |x_i - x_j|^2 / (2 bandwidth^2) - H(q_i) + log Z_i,

    and ``sum_j q_ij |x_i - x_j|^2 = sum_c phi_ic (|x_i|^2 - 2 x_i . mu_c +
    s_c / m_c)`` with ``mu_c`` the ``phi``-weighted cluster means and
    ``s_c = sum_j phi_jc |x_j|^2``: ``O(n C d)``. Summed over points it is
    twice the probabilistic k-means loss ``sum_i sum_c phi_ic |x_i - mu_c|^2``.
    The entropies need ``q`` on every pair: ``O(n^2 C)`` time in row blocks,
    ``O(block_size n)`` memory.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features)
        Data, in the space where ``p``'s Gaussian is evaluated.
    log_phi : torch.Tensor of shape (n, n_clusters)
        Log soft assignments.
    bandwidth : float
        Standard deviation ``sigma`` of the Gaussian.
    log_normalizers : torch.Tensor of shape (n,), optional
        :func:`gaussian_log_normalizers` of ``X``, computed here if omitted.
    block_size : int, default=1024

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to ``log_phi``.
    """
    if log_normalizers is None:
        log_normalizers = gaussian_log_normalizers(X, bandwidth, block_size)
    phi = log_phi.exp()
    mass = phi.sum(0)
    squared_norms = (X * X).sum(1)
    means = (phi.T @ X) / mass[:, None]
    spread = (phi.T @ squared_norms) / mass
    expected_squared = (phi * (squared_norms[:, None] - 2.0 * X @ means.T + spread[None, :])).sum()
    negative_entropy = log_phi.new_zeros(())
    for log_q in _log_q_blocks(log_phi, None, block_size):
        negative_entropy = negative_entropy + (log_q.exp() * log_q).sum()
    return expected_squared / (2.0 * bandwidth**2) + negative_entropy + log_normalizers.sum()


def sampled_cross_entropy(
    log_phi_anchors, log_phi_neighbors, log_mass, *, log_degree_neighbors=None, alpha_q=0.0, n=None
):
    """Mean ``log q(j|i)`` over sampled pairs, from their log soft assignments.

    Parameters
    ----------
    log_phi_anchors, log_phi_neighbours : torch.Tensor of shape (n_pairs, n_clusters)
        Log soft assignments of the two ends of each pair.
    log_mass : torch.Tensor of shape (n_clusters,)
        ``log m_c`` (or ``log M_c`` for ``cluster_degree``) over the whole
        data set, or an estimate of it.
    log_degree_neighbours : torch.Tensor of shape (n_pairs,), optional
        Log degrees of the neighbours, for ``cluster_degree``.
    alpha_q : float, default=0.0
    n : int
        Number of points (for the uniform part of ``alpha_q``).

    Returns
    -------
    torch.Tensor
        Scalar mean of ``log q~(j|i)``.
    """
    log_q = torch.logsumexp(log_phi_anchors + log_phi_neighbors - log_mass, dim=1)
    if log_degree_neighbors is not None:
        log_q = log_q + log_degree_neighbors
    return mix_uniform(log_q, alpha_q, 1.0 / n).mean()


class ExactClusterObjective:
    """Every step on the exact loss of the whole data set, ``loss(log softmax(model(inputs)))``.

    Parameters
    ----------
    loss : callable
        ``loss(log_phi) -> scalar tensor``, e.g. :func:`cluster_loss` or
        :func:`csne_loss` bound to their data.
    inputs : torch.Tensor or None
        The model's input; None for free logits.
    """

    #: Iterations between convergence checks; the exact loss is cheap to read at any step.
    check_every = 10
    #: Checks in a row without enough improvement that make a restart converged.
    patience = 1
    #: Every step's loss is the exact one.
    noisy = False

    def __init__(self, loss, inputs=None):
        self.loss, self.inputs = loss, inputs

    def step(self, model):
        """The loss, differentiable in the model's parameters."""
        return self.loss(torch.log_softmax(model(self.inputs), dim=1))

    def final(self, model):
        """The loss of the trained model, as a float."""
        with torch.no_grad():
            return float(self.step(model))


class SampledClusterObjective:
    """Each step on a batch of anchors with walk-sampled neighbors, cluster masses estimated from it.

    Every step draws ``batch_size`` anchors uniformly, one neighbor of each
    from the propagated ``p~`` by a random walk, and, with ``alpha``, one
    uniform neighbor; restarts are compared on one fixed sample of
    ``n_evaluation`` anchors, with the masses of the whole data set.

    Parameters
    ----------
    sampler : WalkSampler
    inputs : torch.Tensor or None
        The model's input on the training device; None for free logits.
    batch_size : int
    generator : torch.Generator
        CPU source of the batches; the evaluation sample is drawn from it here.
    alpha, alpha_q : float
        Debiasing of ``p`` and ``q``.
    n_evaluation : int
        Anchors of the evaluation sample (at most ``n``).
    device : torch.device
    sample_weight : torch.Tensor of shape (n,), optional
        Anchors are then drawn with probability proportional to their
        weight (so a point of weight two anchors as often as its repeated
        row would), and the cluster masses are the weighted ones. The
        neighbours' weights belong in the sampler's ``p``
        (:func:`~..affinities.graphs.weight_neighbors`).
    """

    #: Iterations between convergence checks, over which the batches' losses are averaged.
    check_every = 50
    #: Checks in a row without enough improvement that make a restart converged: one
    #: average of noisy estimates can stall while the fit still improves.
    patience = 3
    #: A step's loss is one batch's estimate.
    noisy = True

    def __init__(
        self, sampler, inputs, batch_size, generator, *, alpha, alpha_q, n_evaluation, device, sample_weight=None
    ):
        self.sampler, self.inputs, self.batch_size, self.generator = sampler, inputs, batch_size, generator
        self.alpha, self.alpha_q, self.device = alpha, alpha_q, device
        self.sample_weight = None if sample_weight is None else sample_weight.to(torch.float64).cpu()
        # The anchors' total mass: n points, or the weights' sum.
        self.total_mass = float(sampler.n if sample_weight is None else self.sample_weight.sum())
        self.evaluation = self._sample_pairs(min(sampler.n, n_evaluation))

    def _sample_pairs(self, n_anchors):
        """Anchors, their walk neighbors (kept pairs only) and uniform neighbors."""
        n = self.sampler.n
        if self.sample_weight is None:
            anchors = torch.randint(n, (n_anchors,), generator=self.generator)
        else:
            anchors = torch.multinomial(self.sample_weight, n_anchors, replacement=True, generator=self.generator)
        neighbors, kept = self.sampler.sample(anchors, self.generator)
        uniform = torch.randint(n, (n_anchors,), generator=self.generator) if self.alpha > 0 else None
        return anchors, kept, neighbors, uniform

    def _log_phi(self, model, pairs):
        anchors, _, neighbors, uniform = pairs
        index = torch.cat([anchors, neighbors] + ([uniform] if uniform is not None else [])).to(self.device)
        if self.inputs is not None and index.numel() < self.sampler.n:
            logits = model(self.inputs.index_select(0, index))
        else:
            # A batch with as many rows as the data set: each point's logits once, then gathered.
            logits = (model(self.inputs) if self.inputs is not None else model()).index_select(0, index)
        return torch.log_softmax(logits, dim=1)

    def _cross_entropy(self, log_phi, pairs, log_mass):
        """``(1 - alpha) E_p~ log q~ + alpha E_uniform log q~`` over the pairs, from their log assignments."""
        anchors, kept, _, uniform = pairs
        m, n = anchors.shape[0], self.sampler.n
        at_anchor, at_neighbor = log_phi[:m], log_phi[m : 2 * m]
        cross = sampled_cross_entropy(at_anchor[kept], at_neighbor[kept], log_mass, alpha_q=self.alpha_q, n=n)
        if uniform is not None:
            spread = sampled_cross_entropy(at_anchor, log_phi[2 * m :], log_mass, alpha_q=self.alpha_q, n=n)
            cross = (1.0 - self.alpha) * cross + self.alpha * spread
        return cross

    def step(self, model):
        """Minus the cross-entropy of one fresh batch, differentiable in the model's parameters."""
        pairs = self._sample_pairs(self.batch_size)
        log_phi = self._log_phi(model, pairs)
        # The anchors are a sample in proportion to the points' mass: theirs,
        # scaled to the total, estimates each cluster's mass.
        log_mass = torch.logsumexp(log_phi[: self.batch_size], dim=0) + np.log(self.total_mass / self.batch_size)
        return -self._cross_entropy(log_phi, pairs, log_mass)

    def final(self, model):
        """Minus the cross-entropy of the evaluation pairs under the whole data set's cluster masses."""
        with torch.no_grad():
            logits = model(self.inputs) if self.inputs is not None else model()
            log_phi = torch.log_softmax(logits, dim=1)
            if self.sample_weight is not None:
                log_phi = log_phi + torch.log(self.sample_weight).to(log_phi)[:, None]
            log_mass = torch.logsumexp(log_phi, dim=0)
            return float(-self._cross_entropy(self._log_phi(model, self.evaluation), self.evaluation, log_mass))

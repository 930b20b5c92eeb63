"""The exact I-Con loss over all pairs, with a closed-form gradient for distance kernels.

Two normalisations are supported:

``"conditional"``
    I-Con's own form, ``L = mean_i KL(p(.|i) || q(.|i))`` with ``q``
    normalised per row.
``"joint"``
    t-SNE's form, ``L = KL(P || Q)`` with ``P`` a joint distribution over
    ordered pairs (symmetrised conditionals) and ``Q`` normalised over all
    pairs.
"""

import math
import warnings

import torch

from ..divergence import debias, debiased_entropy, uniform_mass
from ..kernels.distance import DISTANCE_KERNELS, distance_kernel_terms, log_kernel_matrix, log_q_from_log_kernel

#: A sparse ``p`` with more than this share of all pairs nonzero is handled as
#: a dense matrix: past it, per-edge gathers cost more than the dense pass
#: they save (the timings per density are in benchmarks/RESULTS.md).
SPARSE_DENSITY_LIMIT = 0.1


#: The limit when ``p`` is debiased (``alpha > 0``): the uniform part's
#: attraction then needs a dense pass of its own and the sparse layout no
#: longer saves the in-place square.
SPARSE_DENSITY_LIMIT_DEBIASED = 0.03


class DistanceKernelObjective:
    """Exact I-Con loss and its closed-form gradient for distance kernels.

    For a learned kernel ``k(d^2)`` of the squared embedding distance, the
    gradient of the loss is ``2 sum_j (G_ij + G_ji) (y_i - y_j)`` with
    ``G = (p~ r - q S) w``: ``w = -d log k / d(d^2)``, ``r_ij`` the kernel's
    share of ``q~_ij = (1 - alpha_q) q_ij + alpha_q u`` and ``S`` the sum of
    ``p~ r`` over the normalisation's support (one number for the joint
    form, one per row for the conditional one). Without ``alpha_q``, ``r``
    and ``S`` are one and this is t-SNE's familiar
    ``4 sum_j (p_ij - q_ij) (1 + d_ij^2)^-1 (y_i - y_j)``.

    The repulsion and the uniform part of ``p~`` touch every pair and are
    computed densely, in place in reused ``n x n`` buffers: one matrix
    product gives all distances and one the gradient. The data's part of
    ``p~`` is sparse (t-SNE's ``P`` has about ``3 perplexity`` entries per
    row), so its attraction is gathered on those entries only and applied
    by one sparse product: no dense copy of ``P`` is read on every step.
    The loss itself is only evaluated when asked for (it needs a logarithm
    of every pair once ``p`` or ``q`` is debiased).

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Supervisory distribution in the chosen normalisation, on the device
        and in the dtype of the embeddings, zero on the diagonal.
    kernel : {"student_t", "gaussian"}
    normalization : {"joint", "conditional"}
    alpha : float, default=0.0
        Debiasing of ``p``.
    alpha_q : float, default=0.0
        Debiasing of ``q``.
    dof : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    temperature : float, default=0.5
        Squared width of the Gaussian kernel, ``exp(-d^2 / (2 temperature))``.
    """

    def __init__(self, P, kernel, normalization, alpha=0.0, alpha_q=0.0, dof=1.0, temperature=0.5):
        if kernel not in DISTANCE_KERNELS:
            raise ValueError(f"Closed-form gradient needs a distance kernel, got {kernel!r}.")
        self.kernel, self.normalization, self.dof = kernel, normalization, float(dof)
        self.alpha, self.alpha_q = float(alpha), float(alpha_q)
        # A Gaussian of squared width T on Y is the unit one, exp(-d^2), on
        # Y / sqrt(2 T): the closed form below works on the rescaled points.
        self.y_scale = 1.0 if kernel == "student_t" else (2.0 * float(temperature)) ** -0.5
        n = P.shape[0]
        self.n = n
        self.uniform = uniform_mass(n, normalization)
        # p~ = (1 - alpha) p + alpha u: the uniform part's weight on every
        # off-diagonal pair, and the data's part, kept apart because early
        # exaggeration multiplies the data's part only.
        self.uniform_weight = self.alpha * self.uniform
        limit = SPARSE_DENSITY_LIMIT_DEBIASED if self.alpha > 0 else SPARSE_DENSITY_LIMIT
        self.sparse = P.is_sparse and P._nnz() <= limit * n * n
        if self.sparse:
            self._init_edges(P.coalesce())
            self.entropy = debiased_entropy(self.p_data, self.uniform_weight, n * (n - 1))
        else:
            dense = P.to_dense() if P.is_sparse else P
            self.p_data = (1.0 - self.alpha) * dense
            debiased = debias(dense, self.alpha, normalization)
            self.entropy = torch.special.xlogy(debiased, debiased).sum()
        self._base = torch.empty((n, n), dtype=P.dtype, device=P.device)
        self._work = torch.empty_like(self._base)
        self._share = torch.empty_like(self._base) if self.alpha_q > 0 else None
        self.k_power, self.w_scale = distance_kernel_terms(kernel, self.dof)

    def _init_edges(self, P):
        """Index the entries of a sparse ``P`` and the pattern of its symmetric attraction."""
        n = self.n
        self.rows, self.cols = P.indices()
        self.p_data = (1.0 - self.alpha) * P.values()
        self.flat = self.rows * n + self.cols
        if self.normalization == "joint":
            # P is symmetric: the attraction G_ij + G_ji = 2 G_ij sits on P's own entries.
            pattern_rows, pattern_flat = self.rows, self.flat
        else:
            union = (P + P.transpose(0, 1)).coalesce()
            pattern_rows, pattern_cols = union.indices()
            pattern_flat = pattern_rows * n + pattern_cols
            # Coalesced indices are sorted row-major, so flat positions are too.
            self.slot = torch.searchsorted(pattern_flat, self.flat)
            self.slot_transposed = torch.searchsorted(pattern_flat, self.cols * n + self.rows)
        self.pattern_flat = pattern_flat
        counts = torch.bincount(pattern_rows, minlength=n)
        crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            # The attraction's pattern is fixed; its values are refilled on every step.
            self._pull = torch.sparse_csr_tensor(
                crow,
                pattern_flat - pattern_rows * n,
                torch.zeros(pattern_flat.numel(), dtype=P.dtype, device=P.device),
                (n, n),
                check_invariants=False,
            )

    def _kernel_base(self, Y):
        """Fill the base buffer with ``b = 1/(1 + d^2/dof)`` or the shifted Gaussian ``k``; zero diagonal."""
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

    def _on_data(self, matrix):
        """``matrix`` at the entries of ``p`` (a vector if sparse, the matrix itself if dense)."""
        # torch.take gathers faster than indexing the flattened matrix on CPU.
        return torch.take(matrix, self.flat) if self.sparse else matrix

    def _cross_entropy(self, values, take_log):
        """``sum_{i != j} p~_ij log v_ij`` for ``v`` a kernel (``take_log``) or already ``log q~``."""
        on_data = self._on_data(values)
        if take_log:
            cross = torch.special.xlogy(self.p_data, on_data).sum()
        else:
            cross = (self.p_data * torch.where(self.p_data > 0, on_data, 0.0)).sum()
        if self.uniform_weight:
            logs = values.log() if take_log else values.clone()
            logs.diagonal().zero_()
            cross = cross + self.uniform_weight * logs.sum()
        return cross

    def loss(self, Y):
        """The exact loss at ``Y`` (a scalar tensor)."""
        return self._loss_of_scaled(Y * self.y_scale)

    def _loss_of_scaled(self, Y):
        """The loss in log space, safe where kernel values underflow."""
        log_k = log_kernel_matrix(Y, self.kernel, dof=self.dof)
        log_q = log_q_from_log_kernel(log_k, self.normalization, self.alpha_q)
        return self._per_anchor(self.entropy - self._cross_entropy(log_q, take_log=False))

    def _per_anchor(self, total):
        return total / self.n if self.normalization == "conditional" else total

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        """Loss and gradient at embeddings ``Y``.

        Parameters
        ----------
        Y : torch.Tensor of shape (n, n_components)
        exaggeration : float, default=1.0
            Factor on the attraction of the data's part of ``p``,
            ``(1 - alpha) p_ij r_ij``, in the gradient (t-SNE's early
            exaggeration); the uniform part of debiasing keeps weight one,
            else it would pull every pair ``exaggeration`` times harder and
            collapse the embedding. The returned loss is always that of the
            plain ``p``.
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
        # M, the dense coefficients, is held divided by dense_scale.
        dense_scale = 1.0
        student = self.kernel == "student_t"
        joint = self.normalization == "joint"
        work = self._work
        kernel = base if self.k_power == 1.0 else torch.pow(base, self.k_power, out=work)
        mass = kernel.sum(1)
        normaliser = mass.sum() if joint else mass
        # w / c at the attraction's entries (1 for the Gaussian).
        w_on_pattern = torch.take(base, self.pattern_flat) if student and self.sparse else None
        loss = math.nan
        if self.alpha_q > 0:
            M, attraction, loss = self._debiased_q_terms(kernel, normaliser, compute_loss)
            if student:
                M.mul_(base)
        else:
            if compute_loss:
                loss = self._loss_from_kernel(kernel, normaliser)
            attraction = self.p_data
            if joint and not self.sparse and student and self.k_power == 1.0:
                # t-SNE on a dense p: M = b (e p + u - b / Z) in two passes, held divided by e.
                M = torch.add(attraction, base, alpha=-1.0 / (exaggeration * float(normaliser)), out=work)
                if self.uniform_weight:
                    M.add_(self.uniform_weight / exaggeration)
                M.mul_(base)
                dense_scale, attraction = exaggeration, None
            else:
                # Dense part: the repulsion q w / c, then the uniform attraction.
                if not student:
                    M = kernel
                elif kernel is base and self.sparse and not self.uniform_weight:
                    # base is not read again (the sparse attraction took its
                    # values already): square it in place, one stream fewer.
                    M = base.mul_(base)
                else:
                    M = torch.mul(kernel, base, out=work)
                if joint and self.sparse:
                    # -1 / Z is applied to the product with M, a pass over M fewer.
                    dense_scale = -1.0 / normaliser
                    uniform_pull = -self.uniform_weight * float(normaliser)
                elif joint:
                    M.mul_(-1.0 / normaliser)
                    uniform_pull = self.uniform_weight
                else:
                    inverse = 1.0 / (n * mass)
                    across = M * inverse[None, :]
                    M.mul_(inverse[:, None]).add_(across).neg_()
                    uniform_pull = self.uniform_weight * 2.0 / n
                if uniform_pull:
                    M.add_(base, alpha=uniform_pull) if student else M.add_(uniform_pull)
        ones = torch.ones((n, 1), dtype=Y.dtype, device=Y.device)
        Y1 = torch.cat([Y, ones], 1)
        # The data's attraction is exaggeration * attraction, symmetrised.
        factor = exaggeration if joint else exaggeration / n
        if self.sparse:
            attraction = attraction * factor
            if not joint:
                attraction = (
                    attraction.new_zeros(self.pattern_flat.numel())
                    .index_add_(0, self.slot, attraction)
                    .index_add_(0, self.slot_transposed, attraction)
                )
            if student:
                attraction = attraction * w_on_pattern
            self._pull.values().copy_(attraction)
            # M is symmetric; the transposed product is the faster one on CPU.
            r = (Y1.T @ M).T.mul_(dense_scale) + self._pull @ Y1
        else:
            if attraction is not None:
                if not joint:
                    attraction = attraction + attraction.T
                M.addcmul_(attraction, base, value=factor) if student else M.add_(attraction, alpha=factor)
            r = (Y1.T @ M).T.mul_(dense_scale)
        if compute_loss and loss is None:
            loss = self._loss_of_scaled(Y)
        scale = (4.0 if joint else 2.0) * self.w_scale
        grad = scale * self.y_scale * (r[:, d:] * Y - r[:, :d])
        return loss, grad

    def _debiased_q_terms(self, kernel, normaliser, compute_loss):
        """With ``alpha_q``: the dense part ``(alpha u r - q S) / c`` (conditional: symmetrised, over n).

        Returns the dense coefficients (the repulsion and the uniform part's
        attraction, still to be multiplied by the kernel base for the
        Student-t), the data's attraction ``(1 - alpha) p r`` on the data
        entries (to be exaggerated), and the loss.
        """
        n = self.n
        joint = self.normalization == "joint"
        q = torch.div(kernel, normaliser if joint else normaliser[:, None], out=self._work)
        # q~ = (1 - alpha_q) q + alpha_q u off the diagonal, then the kernel's share r = (1 - alpha_q) q / q~.
        share = torch.add(q, self.alpha_q * self.uniform / (1.0 - self.alpha_q), out=self._share)
        loss = math.nan
        if compute_loss:
            log_debiased = share.log().add_(math.log1p(-self.alpha_q))
            loss = self._per_anchor(self.entropy - self._cross_entropy(log_debiased, take_log=False))
        torch.div(q, share, out=share)
        share_on_data = self._on_data(share)
        data_share = self.p_data * share_on_data
        if joint:
            total = data_share.sum() + self.uniform_weight * share.sum()
            M = q.mul_(-total).add_(share, alpha=self.uniform_weight)
        else:
            if self.sparse:
                row_total = torch.zeros_like(normaliser).index_add_(0, self.rows, data_share)
            else:
                row_total = data_share.sum(1)
            row_total = row_total + self.uniform_weight * share.sum(1)
            one_sided = q.mul_(row_total[:, None]).sub_(share, alpha=self.uniform_weight)
            M = (one_sided + one_sided.T).div_(-n)
        return M, data_share, loss

    def _loss_from_kernel(self, kernel, normaliser):
        """The loss from the kernel matrix and its total (joint) or row (conditional) masses.

        Returns None if a kernel value that ``p`` needs underflowed; the
        caller then falls back to the log-space loss.
        """
        cross = self._cross_entropy(kernel, take_log=True)
        if not torch.isfinite(cross):
            return None
        # Each row of p~ (conditional) or all of it (joint) sums to one.
        return self._per_anchor(self.entropy - cross + torch.log(normaliser).sum())


def exact_buffers(normalization, *, closed_form=True, alpha_q=0.0, dense_input=False):
    """How many ``n x n`` matrices an exact fit holds at once at its peak.

    Closed form: the dense ``p``, the kernel and work buffers and the
    loss's temporary; the conditional normalisation adds the symmetrised
    ``p`` and one more temporary, ``alpha_q`` the kernel's share of each
    debiased ``q``. Autograd: ``p`` and about eight intermediates of the
    log-space loss. ``dense_input`` (a fixed bandwidth, precomputed
    distances or affinities) adds the float64 matrix ``p`` is built from.

    Returns
    -------
    int
    """
    if closed_form:
        buffers = {"joint": 4, "conditional": 6}[normalization] + (1 if alpha_q > 0 else 0)
    else:
        buffers = 10
    return buffers + (4 if dense_input else 0)

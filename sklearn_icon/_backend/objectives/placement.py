"""The I-Con loss of new points placed into a fixed embedding (openTSNE's ``transform``).

Each new point ``i`` has its own supervisory row ``p(.|i)`` over the
reference points and its own learned row ``q(.|i)`` over the same reference
points, whose embeddings do not move. The loss is the sum over new points
of ``KL(p(.|i) || q(.|i))``: no term couples two new points, so each one's
gradient, and hence its whole trajectory under an element-wise update, is
the same whichever other points are placed with it.
"""

import math

import torch

from ..kernels.distance import LEARNED_KERNELS


def _log_kernel_rows(Y, reference, kernel, dof, temperature):
    """Unnormalised log affinities of every row of ``Y`` to every reference point.

    Computed element-wise, without a matrix product whose blocking could
    depend on how many rows are passed, so that a row's values do not
    depend on the other rows.
    """
    if kernel == "cosine":
        unit = Y / Y.norm(dim=1, keepdim=True).clamp_min(1e-12)
        unit_ref = reference / reference.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (unit[:, None, :] * unit_ref[None, :, :]).sum(-1) / temperature
    difference = Y[:, None, :] - reference[None, :, :]
    squared = (difference * difference).sum(-1)
    if kernel == "student_t":
        return -0.5 * (dof + 1.0) * torch.log1p(squared / dof)
    if kernel == "gaussian":
        return squared / (-2.0 * temperature)
    raise ValueError(f"Unknown learned kernel {kernel!r}; expected one of {LEARNED_KERNELS}.")


class PlacementObjective:
    """Summed ``KL(p(.|i) || q(.|i))`` of new points against fixed reference embeddings.

    Follows the objective protocol of :mod:`sklearn_icon._backend.objectives`:
    ``objective(Y, exaggeration, compute_loss) -> (loss, grad)``. The
    gradient is that of the sum over new points (a point's step does not
    shrink as more points are placed); the loss reported is the mean.

    Parameters
    ----------
    P : torch.Tensor of shape (m, n_ref)
        Sparse COO supervisory rows, each summing to one.
    reference : torch.Tensor of shape (n_ref, n_components)
        The fitted embedding the new points are placed into.
    kernel : {"student_t", "gaussian", "cosine"}, default="student_t"
        Learned kernel, as in the fit.
    alpha : float, default=0.0
        Debiasing of ``p``: ``(1 - alpha) p + alpha u``, ``u`` uniform over
        the reference points.
    alpha_q : float, default=0.0
        The same debiasing of ``q``, in log space.
    dof, temperature : float
        Parameters of the kernel.
    block_size : int, default=128
        New points per block, bounding memory at ``block_size * n_ref``
        numbers per buffer.
    """

    def __init__(
        self, P, reference, kernel="student_t", alpha=0.0, alpha_q=0.0, dof=1.0, temperature=0.5, block_size=128
    ):
        P = P.coalesce()
        self.m, self.n_ref = P.shape
        self.rows, self.cols = P.indices()
        self.values = P.values().to(reference.dtype)
        self.reference = reference
        self.kernel, self.dof, self.temperature = kernel, dof, temperature
        self.alpha, self.alpha_q = alpha, alpha_q
        self.block_size = block_size
        self.starts = torch.searchsorted(self.rows, torch.arange(self.m + 1, device=self.rows.device))
        data = (1.0 - alpha) * self.values
        entropy = torch.zeros(self.m, dtype=reference.dtype, device=reference.device)
        # The entropy of the debiased p: the uniform part adds alpha / n_ref to
        # every entry, the stored ones included.
        uniform = alpha / self.n_ref
        stored = data + uniform
        entropy.index_add_(0, self.rows, stored * torch.log(stored))
        if alpha > 0:
            counts = torch.bincount(self.rows, minlength=self.m).to(reference.dtype)
            entropy += (self.n_ref - counts) * uniform * math.log(uniform)
        self.neg_entropy = entropy

    def _block_loss(self, Y, start, stop, exaggeration):
        """Per-row plain loss of rows ``start:stop`` and the exaggerated sum to differentiate."""
        log_k = _log_kernel_rows(Y, self.reference, self.kernel, self.dof, self.temperature)
        log_q = log_k - torch.logsumexp(log_k, dim=1, keepdim=True)
        if self.alpha_q > 0:
            log_q = torch.logaddexp(
                log_q + math.log1p(-self.alpha_q), torch.full_like(log_q, math.log(self.alpha_q / self.n_ref))
            )
        lo, hi = int(self.starts[start]), int(self.starts[stop])
        local_rows = self.rows[lo:hi] - start
        weights = (1.0 - self.alpha) * self.values[lo:hi]
        attraction = torch.zeros(stop - start, dtype=Y.dtype, device=Y.device)
        attraction = attraction.index_add(0, local_rows, -weights * log_q[local_rows, self.cols[lo:hi]])
        if self.alpha > 0:
            attraction = attraction - (self.alpha / self.n_ref) * log_q.sum(1)
        plain = self.neg_entropy[start:stop] + attraction
        if exaggeration == 1.0:
            return plain, attraction.sum()
        # t-SNE's exaggeration multiplies the attraction -sum p log k and
        # leaves the normaliser log Z: -sum p log q = -sum p log k + log Z.
        normaliser = torch.logsumexp(log_k, dim=1)
        return plain, (exaggeration * (attraction - normaliser) + normaliser).sum()

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        """Mean loss and the gradient of the (exaggerated) summed loss with respect to ``Y``."""
        grad = torch.empty_like(Y)
        total = 0.0
        for start in range(0, self.m, self.block_size):
            stop = min(self.m, start + self.block_size)
            block = Y[start:stop].detach().requires_grad_(True)
            with torch.enable_grad():
                plain, summed = self._block_loss(block, start, stop, exaggeration)
                (grad[start:stop],) = torch.autograd.grad(summed, block)
            total += float(plain.detach().sum()) if compute_loss else 0.0
        return (total / self.m if compute_loss else math.nan), grad

    def loss(self, Y):
        """Mean over the new points of ``KL(p(.|i) || q(.|i))``."""
        with torch.no_grad():
            total = 0.0
            for start in range(0, self.m, self.block_size):
                stop = min(self.m, start + self.block_size)
                total += float(self._block_loss(Y[start:stop], start, stop, 1.0)[0].sum())
        return total / self.m


class InterpolatedPlacementObjective:
    """:class:`PlacementObjective` for the Student-t kernel, its repulsion read off a fixed field.

    The reference points do not move, so the two kernel sums the gradient
    of ``log Z_i`` needs (``sum_j k(d_ij^2)`` and ``sum_j k'(d_ij^2) (y_i -
    y_j)``) are fixed fields over the embedding plane: computed once on an
    interpolation grid covering the reference embedding with a margin
    (openTSNE's ``prepare_interpolation_grid``), then only read at the new
    points every iteration, ``O(n_new)`` per iteration instead of
    ``O(n_new * n_ref)``. The attraction is exact, over each new point's
    neighbours in ``p``. A point outside the margin reads its nearest box.

    Parameters
    ----------
    P : torch.Tensor of shape (m, n_ref)
        Sparse COO supervisory rows, each summing to one.
    reference : torch.Tensor of shape (n_ref, n_components), n_components <= 2
    dof : float, default=1.0
    padding : float, default=0.25
        Margin of the grid on each side, as a fraction of the reference's span.
    box_width : float, default=1.0
        Width of the grid's boxes, in embedding units.
    """

    def __init__(self, P, reference, dof=1.0, padding=0.25, box_width=1.0):
        from .fft import InterpolationGrid

        P = P.coalesce()
        self.m, self.n_ref = P.shape
        self.reference, self.dof = reference, dof
        # Each row's neighbours as one padded (m, k) block (padding carries
        # no weight): batched products instead of a scatter over edges.
        rows, cols = P.indices()
        values = P.values().to(reference.dtype)
        counts = torch.bincount(rows, minlength=self.m)
        width = max(int(counts.max()), 1) if self.m else 1
        slot = torch.arange(rows.shape[0]) - (torch.cumsum(counts, 0) - counts)[rows]
        self.weights = torch.zeros((self.m, width), dtype=reference.dtype)
        self.weights[rows, slot] = values
        neighbor = torch.zeros((self.m, width), dtype=torch.long)
        neighbor[rows, slot] = cols
        # (m, d, k): the neighbours along the last, contiguous axis.
        self.neighbors = reference[neighbor].transpose(1, 2).contiguous()
        self.neg_entropy = torch.special.xlogy(self.weights, self.weights).sum(1)
        low, high = reference.min(0).values, reference.max(0).values
        margin = padding * (high - low).max()
        corners = torch.stack([low - margin, high + margin])
        # The fields are smooth and summed once: float32 halves the FFTs' cost.
        points = torch.cat([reference, corners]).to(torch.float32)
        self.grid = InterpolationGrid(points, ints_in_interval=box_width)
        # The corners only stretch the grid: they carry no charge.
        charges = torch.cat([torch.ones(1, self.n_ref + 2, dtype=points.dtype), points.T])
        charges[:, self.n_ref :] = 0.0
        kernel_power, force_power = 0.5 * (dof + 1.0), 0.5 * (dof + 3.0)
        (z_field,) = self.grid.potentials(charges[:1], [lambda d2: (1.0 + d2 / dof) ** -kernel_power])
        (force_field,) = self.grid.potentials(charges, [lambda d2: (1.0 + d2 / dof) ** -force_power])
        self.fields = torch.cat([z_field, force_field])

    def _terms(self, Y, exaggeration, compute_loss):
        fields = self.grid.read(self.fields, self.grid.locate(Y.to(self.fields.dtype))).to(Y.dtype)
        Z, force = fields[0], fields[1:]
        c = (self.dof + 1.0) / self.dof
        # grad log Z_i = -(c / Z_i) sum_j b_ij^((dof + 3) / 2) (y_i - y_j)
        grad = -c * (Y * force[0][:, None] - force[1:].T) / Z[:, None]
        difference = Y[:, :, None] - self.neighbors  # (m, d, k)
        squared = (difference * difference).sum(1)
        pull = self.weights / (1.0 + squared / self.dof)
        grad += (exaggeration * c) * (difference * pull[:, None, :]).sum(-1)
        if not compute_loss:
            return math.nan, grad
        attraction = (self.weights * torch.log1p(squared / self.dof)).sum(1) * (0.5 * (self.dof + 1.0))
        loss = self.neg_entropy + attraction + torch.log(Z.clamp_min(torch.finfo(Y.dtype).tiny))
        return float(loss.mean()), grad

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        """Mean loss and the gradient of the (exaggerated) summed loss with respect to ``Y``."""
        return self._terms(Y.detach(), exaggeration, compute_loss)

    def loss(self, Y):
        """Mean over the new points of ``KL(p(.|i) || q(.|i))``."""
        return self._terms(Y.detach(), 1.0, True)[0]


def placement_objective(P, reference, kernel="student_t", alpha=0.0, alpha_q=0.0, dof=1.0, temperature=0.5):
    """The placement objective for this configuration: interpolated where it applies, else exact.

    The interpolated field serves the Student-t kernel in 1 or 2 dimensions
    without debiasing; every other configuration sums over all reference
    points exactly (:class:`PlacementObjective`).
    """
    if kernel == "student_t" and reference.shape[1] <= 2 and alpha == 0 and alpha_q == 0:
        return InterpolatedPlacementObjective(P, reference, dof=dof)
    return PlacementObjective(P, reference, kernel, alpha=alpha, alpha_q=alpha_q, dof=dof, temperature=temperature)

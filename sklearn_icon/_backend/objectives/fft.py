"""Kernel sums over all pairs of a 1-D or 2-D embedding in O(n), by interpolation and FFT.

The repulsive half of a neighbour-embedding gradient needs, for every point
``i``, sums like ``sum_j K(|y_i - y_j|^2) c_j`` over *all* points ``j``: an
``n x n`` amount of work done exactly. Following FIt-SNE (Linderman et al.,
"Fast interpolation-based t-SNE for improved visualization of single-cell
RNA-seq data", Nature Methods 2019), the bounding box of the embedding is
cut into equal boxes, each holding a few equispaced interpolation nodes that
together form one uniform grid. Each point spreads its charges onto the
nodes of its box with Lagrange polynomial weights, the kernel acts between
nodes as a convolution over the grid (Toeplitz, so one zero-padded FFT), and
the potentials are interpolated back with the same weights. The error is
that of polynomial interpolation of a smooth kernel over one box, which
the tests measure against the exact sums.

Everything is torch, on the device and in the dtype of the embedding, except
the one-off point order of the edge pass (scipy's reverse Cuthill-McKee on
the graph of ``P``).
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import reverse_cuthill_mckee

from ..divergence import debiased_entropy

#: Embedding dimensions the grid supports; a 3-D grid would need
#: ``(3 * intervals) ** 3`` nodes.
MAX_DIMENSIONS = 2

#: Fewest edges worth a thread of their own.
_MIN_EDGES_PER_SHARD = 200_000

#: Fewest edges (one direction) for which a CPU objective reorders the points along P's graph.
MIN_EDGES_TO_REORDER = 200_000


def graph_order(rows, cols, n):
    """A point order in which the graph's neighbours have nearby indices: reverse Cuthill-McKee.

    The edge pass gathers and scatters the two ends of every edge; with the
    points in this order the ends of most edges lie close in memory, which
    on a CPU takes about a quarter off the pass over MNIST-70k's P
    (benchmarks/RESULTS.md).

    Parameters
    ----------
    rows, cols : torch.Tensor of shape (n_edges,)
        The edges of a symmetric pattern (one direction of each suffices).
    n : int

    Returns
    -------
    order : torch.Tensor of shape (n,)
        ``order[k]`` is the point at position ``k``.
    position : torch.Tensor of shape (n,)
        Its inverse: ``position[order[k]] == k``.
    """
    rows_np, cols_np = rows.cpu().numpy(), cols.cpu().numpy()
    pattern = sp.csr_matrix(
        (np.ones(rows_np.size, dtype=np.int8), (rows_np, cols_np)), shape=(n, n)
    )
    order = reverse_cuthill_mckee(pattern + pattern.T, symmetric_mode=True).astype(np.int64)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    return torch.from_numpy(order).to(rows.device), torch.from_numpy(position).to(rows.device)

_POOLS = {}


def _pool():
    """A thread pool as wide as torch's current thread count, shared by all objectives, created on first use."""
    workers = max(1, torch.get_num_threads())
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sklearn_icon")
    return _POOLS[workers]


def smooth_size(m):
    """The smallest integer ``>= m`` with no prime factor above 5.

    FFTs of such lengths are fast; a length with a large prime factor can be
    many times slower.
    """
    size = max(int(m), 1)
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


def lagrange_weights(t, n_nodes):
    """Lagrange basis polynomials of equispaced nodes, evaluated at ``t``.

    Parameters
    ----------
    t : torch.Tensor
        Positions inside a box, scaled to ``[0, 1]``.
    n_nodes : int
        Nodes per box, at ``(k + 1/2) / n_nodes``.

    Returns
    -------
    torch.Tensor of shape ``t.shape + (n_nodes,)``
        Weight of each node; the weights of one position sum to one.
    """
    nodes = [(k + 0.5) / n_nodes for k in range(n_nodes)]
    weights = []
    for k, node in enumerate(nodes):
        basis = torch.ones_like(t)
        for other in nodes[:k] + nodes[k + 1 :]:
            basis = basis * ((t - other) / (node - other))
        weights.append(basis)
    return torch.stack(weights, -1)


class InterpolationGrid:
    """The interpolation grid of one embedding, reusable for several kernels.

    Parameters
    ----------
    Y : torch.Tensor of shape (n, d) with d in {1, 2}
        Embedding.
    n_interpolation_points : int, default=3
        Nodes per box and dimension.
    min_num_intervals : int, default=50
        Fewest boxes per dimension.
    ints_in_interval : float, default=1.0
        Box width in embedding units once the embedding spans more than
        ``min_num_intervals`` such boxes: a wider embedding gets more boxes
        of the same width, so the accuracy does not fall as it expands, and
        the node spacing (hence a kernel's spectrum) stays fixed. A
        narrower one gets ``min_num_intervals`` narrower boxes.
    max_num_intervals : int, default=1000
        Most boxes per dimension, a cap on memory for an embedding that
        has blown up. The number of boxes is rounded up to a product of
        2, 3 and 5 for the FFT.

    Examples
    --------
    >>> import torch
    >>> Y = torch.randn(500, 2, dtype=torch.float64)
    >>> grid = InterpolationGrid(Y)
    >>> sums = grid.kernel_sums(torch.ones(1, 500, dtype=torch.float64), [lambda d2: 1 / (1 + d2)])
    >>> exact = (1 / (1 + torch.cdist(Y, Y) ** 2)).sum(1)
    >>> bool(torch.allclose(sums[0][0], exact, rtol=1e-3))
    True
    """

    def __init__(self, Y, n_interpolation_points=3, min_num_intervals=50, ints_in_interval=1.0, max_num_intervals=1000):
        n, d = Y.shape
        if d > MAX_DIMENSIONS:
            raise ValueError(f"Interpolation supports embeddings of at most {MAX_DIMENSIONS} dimensions, got {d}.")
        p = int(n_interpolation_points)
        low, high = float(Y.min()), float(Y.max())
        span = max(high - low, 1e-12)
        # Boxes of width ints_in_interval, plus half a box of margin on each
        # side to keep the extreme points inside; their number is rounded up
        # to a 5-smooth one, so that the padded grid (2 p n_boxes per side)
        # is 5-smooth too whenever p is, for the FFT.
        wanted = span / ints_in_interval + 1.0
        if min_num_intervals < wanted <= max_num_intervals:
            # The node spacing, hence the kernel's spectrum, then changes only
            # when the number of boxes does: the spectrum can be reused.
            box_width = float(ints_in_interval)
            n_boxes = smooth_size(math.ceil(wanted))
        else:
            n_boxes = smooth_size(int(min_num_intervals) if wanted <= min_num_intervals else int(max_num_intervals))
            box_width = span / (n_boxes - 1) if n_boxes > 1 else 2 * span
        self.low = low - 0.5 * box_width
        self.box_width, self.n_boxes = box_width, n_boxes
        self.n_dimensions, self.n_nodes, self.nodes_per_side = d, p, n_boxes * p
        self.spacing = box_width / p
        self.dtype, self.device = Y.dtype, Y.device
        self.index, self.weights, self.padded_index = self.locate(Y)

    def locate(self, Y):
        """The nodes of each point's box and its interpolation weights on them.

        A point outside the grid is read from its nearest box (extrapolated).

        Returns
        -------
        index : torch.Tensor of shape (n, p**d)
            Nodes in the ``m**d`` grid.
        weights : torch.Tensor of shape (n, p**d)
        padded_index : torch.Tensor of shape (n, p**d)
            The same nodes in the zero-padded ``(2m)**d`` grid of the FFT.
        """
        n, d, p, m = Y.shape[0], self.n_dimensions, self.n_nodes, self.nodes_per_side
        position = (Y - self.low) / self.box_width
        box = position.floor().clamp_(0, self.n_boxes - 1)
        weights = lagrange_weights(position - box, p)  # (n, d, p)
        node = box.long()[:, :, None] * p + torch.arange(p, device=Y.device)  # (n, d, p)
        if d == 1:
            return node[:, 0, :], weights[:, 0, :], node[:, 0, :]
        index = (node[:, 0, :, None] * m + node[:, 1, None, :]).reshape(n, p * p)
        weights = (weights[:, 0, :, None] * weights[:, 1, None, :]).reshape(n, p * p)
        # Read the padded grid without cutting (and copying) its first quadrant out.
        padded_index = (node[:, 0, :, None] * (2 * m) + node[:, 1, None, :]).reshape(n, p * p)
        return index, weights, padded_index

    def self_sums(self, kernel):
        """What :meth:`kernel_sums` counts for each point's pair with itself, per unit charge.

        The grid sees the self-pair through the interpolation too, as
        ``w_i^T K_box w_i`` over the nodes of the point's box rather than the
        exact ``K(0)``; subtracting this leaves only the other points, and
        keeps a sparse embedding's sums from drowning in self-pair error.

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        p = self.n_nodes
        offset = torch.arange(p, device=self.device, dtype=self.dtype) * self.spacing
        squared = (offset[:, None] - offset[None, :]) ** 2
        if self.n_dimensions == 2:
            squared = (squared[:, None, :, None] + squared[None, :, None, :]).reshape(p * p, p * p)
        return ((self.weights @ kernel(squared)) * self.weights).sum(1)

    def _kernel_spectrum(self, kernel):
        """The real FFT of ``kernel`` on the circulant embedding of the node offsets."""
        m = self.nodes_per_side
        offset = torch.arange(2 * m, device=self.device, dtype=self.dtype)
        offset = torch.where(offset < m, offset, offset - 2 * m) * self.spacing
        squared = offset**2
        if self.n_dimensions == 2:
            squared = squared[:, None] + squared[None, :]
        return torch.fft.rfftn(kernel(squared), dim=tuple(range(-self.n_dimensions, 0)))

    def kernel_sums(self, charges, kernels, spectra=None):
        """``sum_j K(|y_i - y_j|^2) c_j`` for every point, charge and kernel.

        Parameters
        ----------
        charges : torch.Tensor of shape (n_charges, n)
            Charge vectors ``c``.
        kernels : list of callable
            Each maps a tensor of squared distances to kernel values; must
            be smooth (the self-pair ``j = i`` is included, at ``K(0)``).
        spectra : SpectrumCache, optional
            Kernel spectra of earlier grids with the same geometry, reused
            instead of recomputed; ``kernels[k]`` must be the same function
            at every call that shares it.

        Returns
        -------
        list of torch.Tensor of shape (n_charges, n)
            One entry per kernel.
        """
        return [self.read(potential) for potential in self.potentials(charges, kernels, spectra)]

    def read(self, potential, located=None):
        """Interpolate node potentials at the grid's points, or at the points ``located`` gives.

        Parameters
        ----------
        potential : torch.Tensor
            One entry of :meth:`potentials`.
        located : tuple, optional
            :meth:`locate` of other points.

        Returns
        -------
        torch.Tensor of shape (n_charges, n)
        """
        _, weights, padded_index = (self.index, self.weights, self.padded_index) if located is None else located
        n_charges, n = potential.shape[0], weights.shape[0]
        nodes = potential.reshape(n_charges, -1).index_select(1, padded_index.reshape(-1))
        return (nodes.reshape(n_charges, n, -1) * weights).sum(-1)

    def potentials(self, charges, kernels, spectra=None):
        """The potentials of the charges on the grid's nodes, one per kernel (see :meth:`kernel_sums`).

        Returns
        -------
        list of torch.Tensor
            Node potentials on the zero-padded grid, for :meth:`read`.
        """
        n_charges, n = charges.shape
        m, d = self.nodes_per_side, self.n_dimensions
        spread = (charges[:, :, None] * self.weights).reshape(n_charges, -1)
        grid = torch.zeros((n_charges, m**d), dtype=self.dtype, device=self.device)
        grid.index_add_(1, self.index.reshape(-1), spread)
        grid = grid.reshape((n_charges,) + (m,) * d)
        if d == 1:
            spectrum = torch.fft.rfft(grid, n=2 * m, dim=-1)
        else:
            # One 2-D transform: faster than two 1-D passes on these CPUs,
            # though the passes would skip the padding's empty rows
            # (benchmarks/RESULTS.md).
            spectrum = torch.fft.rfftn(grid, s=(2 * m, 2 * m))
        potentials = []
        for position, kernel in enumerate(kernels):
            if spectra is None:
                kernel_spectrum = self._kernel_spectrum(kernel)
            else:
                key = (position, m, d, self.spacing, self.dtype, self.device)
                kernel_spectrum = spectra.get(key, lambda: self._kernel_spectrum(kernel))
            product = spectrum * kernel_spectrum
            if d == 1:
                potential = torch.fft.irfft(product, n=2 * m, dim=-1)
            else:
                # Only the first m rows of the result are read: the last
                # pass runs over those alone.
                potential = torch.fft.irfft(torch.fft.ifft(product, dim=-2)[:, :m], n=2 * m, dim=-1)
            potentials.append(potential)
        return potentials


class SpectrumCache:
    """The last few kernel spectra, by kernel and grid geometry.

    Once an embedding is wider than ``min_num_intervals`` boxes, its grid
    has boxes of a fixed width, so successive gradient steps mostly share
    their grid's size and spacing, and the kernel's FFT need not be redone.

    Parameters
    ----------
    max_entries : int, default=8
        Spectra kept; the oldest is dropped first.
    """

    def __init__(self, max_entries=8):
        self.max_entries = max_entries
        self._entries = {}

    def get(self, key, compute):
        """The spectrum stored under ``key``, or ``compute()``'s, stored."""
        if key not in self._entries:
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = compute()
        return self._entries[key]


class InterpolatedStudentTObjective:
    """t-SNE's joint loss with a Student-t ``q``, in O(nnz(P) + n) per gradient.

    The attraction is summed over the edges of the sparse ``P``; the
    repulsion and the normaliser ``Z = sum_{i != j} k_ij`` come from
    :class:`InterpolationGrid`. With ``b = 1 / (1 + d^2 / dof)``, the kernel
    is ``k = b^((dof + 1) / 2)`` and the gradient
    ``4 c sum_j (p_ij - k_ij / Z) b_ij (y_i - y_j)`` with
    ``c = (dof + 1) / (2 dof)``, the same as
    :class:`~sklearn_icon._backend.objectives.exact.DistanceKernelObjective` computes
    exactly. Debiasing ``alpha`` mixes the uniform distribution over all
    ordered pairs into ``p``; its attraction is one more kernel sum.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), sparse COO
        Symmetric joint supervisory distribution (sums to one), on the
        device and in the dtype of the embeddings.
    dof : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    alpha : float in [0, 1], default=0.0
        Debiasing of ``p``.
    n_interpolation_points, min_num_intervals, ints_in_interval : optional
        Grid settings, see :class:`InterpolationGrid`; the defaults are
        openTSNE's.
    """

    def __init__(self, P, dof=1.0, alpha=0.0, n_interpolation_points=3, min_num_intervals=50, ints_in_interval=1.0):
        P = P.coalesce()
        n = P.shape[0]
        rows, cols = P.indices()
        values = P.values()
        # P is symmetric: one direction of each edge carries both forces.
        upper = rows < cols
        self.n, self.dof, self.alpha = n, float(dof), float(alpha)
        rows, cols, self.edge_p = rows[upper], cols[upper], (1.0 - self.alpha) * values[upper]
        # The points are relabelled in graph order, and the embedding with them at each call.
        self.order = self.position = None
        if rows.device.type == "cpu" and rows.numel() >= MIN_EDGES_TO_REORDER:
            self.order, self.position = graph_order(rows, cols, n)
            rows, cols = self.position[rows], self.position[cols]
            # Each edge keeps its lower end as the anchor, and the shards want them sorted.
            rows, cols = torch.minimum(rows, cols), torch.maximum(rows, cols)
            by_row = torch.argsort(rows * n + cols)
            rows, cols, self.edge_p = rows[by_row], cols[by_row], self.edge_p[by_row]
        self.shards = self._shards(rows, cols, self.edge_p)
        self.uniform = self.alpha / (n * (n - 1.0))
        self.k_power = 0.5 * (self.dof + 1.0)
        self.c = self.k_power / self.dof
        self.grid_settings = dict(
            n_interpolation_points=n_interpolation_points,
            min_num_intervals=min_num_intervals,
            ints_in_interval=ints_in_interval,
        )
        # Keyed by the kernel's position in _kernels(): the same function there at every call.
        self.spectra = SpectrumCache()
        # Entropy of the debiased p: its edges, plus the uniform mass on every
        # other off-diagonal pair.
        self.entropy = float(debiased_entropy(self.edge_p, self.uniform, n * (n - 1.0), multiplicity=2))

    def _shards(self, rows, cols, edge_p):
        """Split the edges, sorted by row, at row boundaries into one shard per CPU thread.

        Gathers, segment sums and scatters over millions of edges run on
        one core in torch; shards of whole rows are independent, so threads
        (torch releases the GIL) use every core. A GPU gets one shard.
        """
        device = rows.device
        n_edges = rows.numel()
        n_shards = 1 if device.type != "cpu" or n_edges < _MIN_EDGES_PER_SHARD else torch.get_num_threads()
        n_shards = max(1, min(n_shards, n_edges // _MIN_EDGES_PER_SHARD))
        shards = []
        # Coalesced rows are sorted: a shard is a contiguous range of rows,
        # and the forces on its row ends are segment sums.
        bounds = torch.searchsorted(
            rows, torch.linspace(0, self.n, n_shards + 1, device=device).round().long()
        ).tolist()
        for k in range(n_shards):
            edges = slice(bounds[k], bounds[k + 1])
            first = int(rows[bounds[k]]) if bounds[k] < n_edges else self.n
            last = int(rows[bounds[k + 1] - 1]) + 1 if bounds[k + 1] > bounds[k] else first
            lengths = torch.bincount(rows[edges] - first, minlength=last - first) if last > first else None
            shards.append((rows[edges], cols[edges], edge_p[edges], first, last, lengths))
        return shards

    def _shard_terms(self, columns, shard, compute_loss, gradient):
        """Cross-entropy part and forces of one shard of edges.

        Returns
        -------
        cross : torch.Tensor or None
            ``sum 2 p log k`` over the shard's edges.
        pull : torch.Tensor of shape (last - first, d) or None
            The attraction on the shard's rows.
        push : torch.Tensor of shape (n, d) or None
            The attraction on the other ends, for all points.
        """
        rows, cols, p, first, last, lengths = shard
        if lengths is None:
            return None, None, None
        # In place wherever possible: over millions of edges every pass and
        # allocation counts.
        differences = [column.index_select(0, rows).sub_(column.index_select(0, cols)) for column in columns]
        squared = differences[0] * differences[0]
        for difference in differences[1:]:
            squared.addcmul_(difference, difference)
        if self.dof != 1.0:
            squared.div_(self.dof)
        cross = -self.k_power * (2.0 * p * torch.log1p(squared)).sum() if compute_loss else None
        if not gradient:
            return cross, None, None
        weight = squared.add_(1.0).reciprocal_().mul_(p)
        pull, push = [], []
        for difference, column in zip(differences, columns):
            force = difference.mul_(weight)
            pull.append(torch.segment_reduce(force, "sum", lengths=lengths))
            push.append(torch.zeros_like(column).scatter_add_(0, cols, force))
        return cross, torch.stack(pull, 1), torch.stack(push, 1)

    def _planar_shard_terms(self, points, shard, compute_loss, gradient):
        """:meth:`_shard_terms` of a 2-D embedding held as complex numbers ``y_0 + i y_1``.

        One gather, subtraction and scatter of 8-byte complex entries does
        what two passes over the coordinates did (10-20 % less time per
        edge on a CPU, benchmarks/RESULTS.md).
        """
        rows, cols, p, first, last, lengths = shard
        if lengths is None:
            return None, None, None
        difference = points.index_select(0, rows).sub_(points.index_select(0, cols))
        real = torch.view_as_real(difference)
        squared = real[:, 0] * real[:, 0]
        squared.addcmul_(real[:, 1], real[:, 1])
        if self.dof != 1.0:
            squared.div_(self.dof)
        cross = -self.k_power * (2.0 * p * torch.log1p(squared)).sum() if compute_loss else None
        if not gradient:
            return cross, None, None
        force = difference.mul_(squared.add_(1.0).reciprocal_().mul_(p))
        pull = torch.segment_reduce(torch.view_as_real(force), "sum", lengths=lengths, axis=0)
        push = torch.view_as_real(torch.zeros_like(points).scatter_add_(0, cols, force))
        return cross, pull, push

    def _edge_terms(self, Y, compute_loss, gradient):
        """``sum 2 p log k`` over the edges and the attraction ``sum_j p_ij b_ij (y_i - y_j)``."""
        if Y.shape[1] == 2:
            inputs, terms = torch.view_as_complex(Y.contiguous()), self._planar_shard_terms
        else:
            inputs, terms = list(Y.T.contiguous()), self._shard_terms
        if len(self.shards) == 1:
            results = [terms(inputs, self.shards[0], compute_loss, gradient)]
        else:
            results = list(_pool().map(lambda shard: terms(inputs, shard, compute_loss, gradient), self.shards))
        cross, attraction = None, None
        if compute_loss:
            cross = sum(result[0] for result in results if result[0] is not None)
        if gradient:
            attraction = torch.zeros_like(Y)
            for (_, pull, push), (_, _, _, first, last, _) in zip(results, self.shards):
                if pull is None:
                    continue
                attraction[first:last] += pull
                attraction -= push
        return cross, attraction

    def _base(self, squared):
        return 1.0 / (1.0 + squared / self.dof)

    def _charges(self, Y):
        ones = torch.ones((1, Y.shape[0]), dtype=Y.dtype, device=Y.device)
        return torch.cat([ones, Y.T], 0)

    def _kernels(self, with_log):
        """Kernel functions: the repulsion's ``k b``, and with debiasing ``b`` and, for the loss, ``log k``."""
        power = self.k_power
        kernels = [lambda s: self._base(s) ** (power + 1.0)]
        if self.alpha > 0:
            kernels.append(self._base)
            if with_log:
                kernels.append(lambda s: -power * torch.log1p(s / self.dof))
        return kernels

    def loss(self, Y):
        """The loss at ``Y`` (a scalar tensor), the normaliser from the grid."""
        return self(Y, compute_loss=True, gradient=False)[0]

    def __call__(self, Y, exaggeration=1.0, compute_loss=True, gradient=True):
        """Loss and gradient at ``Y``; see :class:`~sklearn_icon._backend.objectives.autograd.AutogradObjective`.

        Parameters
        ----------
        Y : torch.Tensor of shape (n, n_components)
        exaggeration : float, default=1.0
            Factor on ``p`` in the gradient; the loss is that of the plain ``p``.
        compute_loss : bool, default=True
            Skip the loss when False (``nan`` is returned).
        gradient : bool, default=True
            Skip the gradient when False (None is returned).

        Returns
        -------
        loss : torch.Tensor or float
        grad : torch.Tensor of shape (n, n_components) or None
        """
        if self.order is not None:
            loss, grad = self._call_in_order(Y.index_select(0, self.order), exaggeration, compute_loss, gradient)
            return loss, None if grad is None else grad.index_select(0, self.position)
        return self._call_in_order(Y, exaggeration, compute_loss, gradient)

    def _call_in_order(self, Y, exaggeration, compute_loss, gradient):
        """:meth:`__call__` with ``Y``'s rows in the objective's own point order."""
        Y = Y - Y.mean(0, keepdim=True)
        grid = InterpolationGrid(Y, **self.grid_settings)
        charges = self._charges(Y)
        kernels = self._kernels(with_log=compute_loss)
        sums = grid.kernel_sums(charges, kernels, self.spectra)
        far = sums[0]
        # Z = sum_ij k_ij needs no kernel sum of its own: k = k b (1 + d^2 / dof)
        # expands into the repulsion's sums, sum_i phi_i (1 + 2 |y_i|^2 / dof)
        # - (2 / dof) sum_i y_i . phi_y,i, which cancel in part: float64.
        wide = far.to(torch.float64)
        Y64 = Y.to(torch.float64)
        mass = (wide[0] * (1.0 + 2.0 * (Y64 * Y64).sum(1) / self.dof)).sum() - 2.0 / self.dof * (Y64 * wide[1:].T).sum()
        mass = mass - grid.self_sums(kernels[0]).to(torch.float64).sum()
        if not bool(mass > 0):
            # The expansion cancelled away (a layout far wider than the
            # grid's capped box count): sum the kernel itself instead.
            def kernel(s):
                return self._base(s) ** self.k_power

            (direct,) = grid.kernel_sums(charges[:1], [kernel])
            mass = direct.to(torch.float64).sum() - grid.self_sums(kernel).to(torch.float64).sum()
        mass = mass.to(Y.dtype)
        cross, attraction = self._edge_terms(Y, compute_loss, gradient)
        loss, grad = math.nan, None
        if compute_loss:
            if self.alpha > 0:
                # The uniform part meets every pair's log kernel.
                cross = cross + self.uniform * (sums[2][0].sum() - grid.self_sums(kernels[2]).sum())
            loss = self.entropy - cross + torch.log(mass)
        if gradient:
            attraction = exaggeration * attraction
            if self.alpha > 0:
                near = sums[1]
                # Exaggeration is for p's data part only (see DistanceKernelObjective).
                attraction += self.uniform * (Y * near[0][:, None] - near[1:].T)
            repulsion = (Y * far[0][:, None] - far[1:].T) / mass
            grad = 4.0 * self.c * (attraction - repulsion)
        return loss, grad

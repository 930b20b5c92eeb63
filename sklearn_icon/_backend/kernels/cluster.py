"""Cluster kernels: the learned distribution of I-Con clustering.

With soft assignments ``phi_ic = p(c | x_i)``, the shared-cluster kernel is

    q(j|i) = sum_c phi_ic phi_jc / m_c,        m_c = sum_k phi_kc,

the probability that a point drawn uniformly from ``i``'s cluster is ``j``
(Theorem 13 of the paper); the degree-weighted variant of normalised cuts
(Theorem 14) weights each ``j`` by its graph degree ``d_j``:

    q(j|i) = sum_c phi_ic phi_jc d_j / M_c,    M_c = sum_k phi_kc d_k.

Rows sum to one over all ``n`` points, ``i`` itself included, so the
uniform distribution of debiasing is ``1 / n`` here. The loss over the
whole data set needs ``q`` only on the edges of a sparse ``p`` and the
cluster masses: ``O(nnz(p) C + n C)`` time and memory, never ``n x n``.
Everything is computed in log space.
"""

import warnings

import torch

from ..divergence import mix_uniform

CLUSTER_KERNELS = ("cluster", "cluster_degree")


def log_cluster_mass(log_phi, log_degree=None):
    """``log m_c`` (or ``log M_c`` with degrees), by ``logsumexp`` over points."""
    weighted = log_phi if log_degree is None else log_phi + log_degree[:, None]
    return torch.logsumexp(weighted, dim=0)


def _factors(log_phi, log_degree):
    """Row-shifted anchor and neighbour factors of ``q``.

    ``q(j|i) = sum_c phi_ic psi_jc`` with ``psi_jc = phi_jc d_j / M_c``.
    Each row of ``log phi`` and ``log psi`` is shifted by its maximum before
    ``exp``, so ``log q(j|i) = s_i + t_j + log(a_i . b_j)`` where the dot
    product has a term of size ``b_j[argmax a_i]``: it underflows only when
    ``j``'s assignment to ``i``'s top cluster is ``e^-87`` below its own top
    one, and is then floored at the smallest normal float.
    """
    return shifted_factors(log_phi, log_neighbor_factor(log_phi, log_degree))


def log_neighbor_factor(log_phi, log_degree=None):
    """``log psi``, the neighbour factor ``psi_jc = phi_jc d_j / M_c`` of ``q(j|i) = sum_c phi_ic psi_jc``."""
    log_psi = log_phi - log_cluster_mass(log_phi, log_degree)
    return log_psi if log_degree is None else log_psi + log_degree[:, None]


def shifted_factors(log_phi, log_psi):
    """:func:`_factors` from ``log phi`` and ``log psi`` already computed."""
    shift_a = log_phi.amax(dim=1, keepdim=True)
    shift_b = log_psi.amax(dim=1, keepdim=True)
    return (log_phi - shift_a).exp(), shift_a[:, 0], (log_psi - shift_b).exp(), shift_b[:, 0]


class EdgeList:
    """The pairs of a sparse ``p``, with CSR layouts of it and of its transpose.

    Built once per fit: the CSR layouts turn the loss's products over the
    edges into sampled and sparse-dense matrix products (no scatter-adds).

    Parameters
    ----------
    rows, cols : torch.Tensor of shape (n_pairs,)
        Anchor and neighbour indices, sorted by ``rows`` (as a coalesced COO
        tensor stores them).
    n : int
        Number of points.
    values : torch.Tensor of shape (n_pairs,), optional
        The matrix's entries on the edges: their row and column sums are
        kept as ``row_mass`` and ``col_mass``.
    symmetric : bool, default=False
        The values form a symmetric matrix: a product with the transpose is
        the product itself, and no transposed layout is built.
    """

    def __init__(self, rows, cols, n, values=None, symmetric=False):
        self.rows, self.cols, self.n, self.symmetric = rows, cols, n, symmetric
        if values is not None:
            self.row_mass = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, rows, values)
            self.col_mass = (
                self.row_mass if symmetric
                else torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(0, cols, values)
            )
        self.crow = self._compressed(rows)
        if not symmetric:
            self.perm = torch.argsort(cols * n + rows)
            self.crow_t = self._compressed(cols)
            self.cols_t = rows[self.perm]
        self._patterns = {}

    def _compressed(self, index):
        crow = torch.zeros(self.n + 1, dtype=torch.int64, device=index.device)
        crow[1:] = torch.bincount(index, minlength=self.n).cumsum(0)
        return crow

    @classmethod
    def from_sparse(cls, P, symmetric=False):
        """The edges of a sparse COO matrix (``symmetric``: as in the constructor)."""
        P = P.coalesce()
        rows, cols = P.indices()
        return cls(rows, cols, P.shape[0], P.values(), symmetric=symmetric)

    def dot(self, a, b):
        """``a_i . b_j`` on every edge ``(i, j)``: a sampled dense-dense product, never ``n x n``."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
            # The pattern's values are multiplied by beta = 0: one pattern per dtype serves every step.
            pattern = self._patterns.get(a.dtype)
            if pattern is None:
                pattern = torch.sparse_csr_tensor(
                    self.crow, self.cols, a.new_zeros(self.cols.shape[0]), (self.n, self.n), check_invariants=False
                )
                self._patterns[a.dtype] = pattern
            return torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values()

    def product(self, values, dense, transpose=False):
        """``W @ dense`` (or ``W^T @ dense``) for the matrix ``W`` with these edges and ``values``."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
            if transpose and not self.symmetric:
                W = torch.sparse_csr_tensor(
                    self.crow_t, self.cols_t, values.index_select(0, self.perm), (self.n, self.n), check_invariants=False
                )
            else:
                W = torch.sparse_csr_tensor(self.crow, self.cols, values, (self.n, self.n), check_invariants=False)
            return W @ dense


def _log_of_dot(dot, shift):
    return torch.log(dot.clamp_min(torch.finfo(dot.dtype).tiny)) + shift


def cluster_log_q(log_phi, rows, cols, *, log_degree=None, alpha_q=0.0):
    """``log q(j|i)`` of the cluster kernel on the pairs ``(rows[e], cols[e])``.

    Parameters
    ----------
    log_phi : torch.Tensor of shape (n, n_clusters)
        Log soft assignments (rows are log-probabilities).
    rows, cols : torch.Tensor of shape (n_pairs,)
        Anchor and neighbour indices.
    log_degree : torch.Tensor of shape (n,), optional
        Log graph degrees, for the ``cluster_degree`` kernel.
    alpha_q : float in [0, 1), default=0.0
        Weight of the uniform ``1 / n`` mixed into ``q``.

    Returns
    -------
    torch.Tensor of shape (n_pairs,)
    """
    a, shift_a, b, shift_b = _factors(log_phi, log_degree)
    dot = (a.index_select(0, rows) * b.index_select(0, cols)).sum(1)
    log_q = _log_of_dot(dot, shift_a.index_select(0, rows) + shift_b.index_select(0, cols))
    return mix_uniform(log_q, alpha_q, 1.0 / log_phi.shape[0])


def cluster_log_q_dense(log_phi, *, log_degree=None, alpha_q=0.0):
    """The full ``n x n`` matrix of ``log q(j|i)``, straight from the definition.

    A log-space reference for small ``n``: ``logsumexp`` over clusters of
    ``log phi_ic + log phi_jc + log d_j - log M_c``.
    """
    log_mass = log_cluster_mass(log_phi, log_degree)
    terms = log_phi[:, None, :] + log_phi[None, :, :] - log_mass
    log_q = torch.logsumexp(terms, dim=2)
    if log_degree is not None:
        log_q = log_q + log_degree[None, :]
    return mix_uniform(log_q, alpha_q, 1.0 / log_phi.shape[0])


def _log_q_blocks(log_phi, log_degree, block_size):
    """``log q(j|i)`` for every pair, one ``(block_size, n)`` block of rows at a time."""
    n = log_phi.shape[0]
    a, shift_a, b, shift_b = _factors(log_phi, log_degree)
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        yield _log_of_dot(a[start:stop] @ b.T, shift_a[start:stop, None] + shift_b[None, :])

"""Sparse neighbor graphs: rows to sparse matrices, k-NN graphs, symmetrisation, propagation, walks."""

import warnings

import torch

from .neighbors import nearest_neighbors


def rows_to_sparse(values, idx, n, n_columns=None):
    """Sparse COO matrix whose row ``i`` holds ``values[i]`` at ``idx[i]``; ``n x n`` unless ``n_columns`` is given."""
    rows = torch.arange(idx.shape[0], device=idx.device).repeat_interleave(idx.shape[1])
    indices = torch.stack([rows, idx.reshape(-1)])
    shape = (n, n if n_columns is None else n_columns)
    return torch.sparse_coo_tensor(indices, values.reshape(-1), shape, check_invariants=False).coalesce()


def uniform_knn_affinity(idx, n):
    """``p(j|i) = 1 / k`` over the ``k`` nearest neighbours of ``i``."""
    k = idx.shape[1]
    values = torch.full(idx.shape, 1.0 / k, dtype=torch.float64, device=idx.device)
    return rows_to_sparse(values, idx, n)


def normalize_rows(A):
    """Turn a non-negative affinity matrix into conditional distributions.

    The diagonal is dropped first. Dense input stays dense, sparse stays
    sparse.

    Parameters
    ----------
    A : torch.Tensor of shape (n, n), dense or sparse COO
        Non-negative affinities.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Row-stochastic ``p(j|i)`` with a zero diagonal.

    Raises
    ------
    ValueError
        If some row has no mass outside the diagonal.
    """
    n = A.shape[0]
    if A.is_sparse:
        A = A.coalesce()
        ind, val = A.indices(), A.values()
        keep = ind[0] != ind[1]
        ind, val = ind[:, keep], val[keep]
        row_mass = torch.zeros(n, dtype=val.dtype, device=val.device).index_add_(0, ind[0], val)
    else:
        A = A.clone()
        A.fill_diagonal_(0.0)
        row_mass = A.sum(1)
    empty = torch.nonzero(row_mass <= 0).flatten()
    if empty.numel():
        raise ValueError(
            f"{empty.numel()} row(s) of the affinity matrix have no mass outside "
            f"the diagonal (first: row {int(empty[0])}); every point needs at "
            "least one neighbour with positive affinity."
        )
    if A.is_sparse:
        return torch.sparse_coo_tensor(ind, val / row_mass[ind[0]], (n, n), check_invariants=False).coalesce()
    return A / row_mass[:, None]


def weight_neighbors(P, weight):
    """``p(j|i) ∝ p(j|i) w_j``: a neighbour of weight ``w`` counts as ``w`` copies of it.

    A point of weight two is then a neighbour twice as often, as its
    repeated row would be. Rows of weight zero are left as they are: no
    loss term reads them, and no walk reaches them.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), sparse COO or dense
        Row-stochastic.
    weight : torch.Tensor of shape (n,)
        Non-negative sample weights.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Row-stochastic, in ``P``'s layout; for sparse ``P`` the entries
        of weight-zero neighbours are dropped.

    Raises
    ------
    ValueError
        If a point of positive weight has only neighbours of weight zero.
    """
    weight = weight.to(P.dtype)
    if not P.is_sparse:
        scale = torch.where(weight[:, None] > 0, weight[None, :], torch.ones_like(weight)[None, :])
        return normalize_rows(P * scale)
    P = P.coalesce()
    rows, cols = P.indices()
    values = P.values() * torch.where(weight[rows] > 0, weight[cols], torch.ones_like(P.values()))
    keep = values > 0
    weighted = torch.sparse_coo_tensor(P.indices()[:, keep], values[keep], P.shape, check_invariants=False)
    try:
        return normalize_rows(weighted)
    except ValueError as error:
        raise ValueError(
            "Some point of positive sample_weight has only neighbours of weight zero, so nothing is left to "
            f"cluster it by ({error})."
        ) from None


def symmetrize_joint(P):
    """t-SNE's joint distribution ``(p(j|i) + p(i|j)) / 2n`` from conditionals.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Row-stochastic conditional distributions.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Symmetric, summing to one over all entries; same layout as ``P``.
    """
    n = P.shape[0]
    joint = P + P.transpose(0, 1)
    if joint.is_sparse:
        # Scaling a coalesced tensor keeps it coalesced: no second sort.
        return joint.coalesce() * (1.0 / (2.0 * n))
    return joint / (2.0 * n)


def knn_graph(X, n_neighbors, metric="euclidean", neighbors="exact", random_state=None):
    """Symmetrised k-nearest-neighbour graph ``A + A^T`` as a sparse matrix.

    ``A_ij = 1`` when ``j`` is among the ``n_neighbors`` nearest neighbours
    of ``i``, so an edge found from both ends weighs 2.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features), or (n, n) distances when ``metric="precomputed"``
    n_neighbors : int
    metric : str, default="euclidean"
    neighbors : {"exact", "approximate", "auto"}, default="exact"
        Neighbour search (see :func:`nearest_neighbors`).
    random_state : int or None, default=None
        Seed of an approximate search.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Sparse COO, symmetric, zero diagonal.
    """
    n = X.shape[0]
    _, idx = nearest_neighbors(X, n_neighbors, metric, method=neighbors, random_state=random_state)
    A = rows_to_sparse(torch.ones(idx.shape, dtype=X.dtype, device=X.device), idx, n)
    return (A + A.transpose(0, 1)).coalesce()


def propagate(P, n_walk_steps, mode="sum"):
    """Neighbour propagation: widen ``p`` by walks on its graph.

    ``mode="sum"`` gives ``P~ ∝ P + P^2 + ... + P^(s+1)`` with
    ``s = n_walk_steps``; ``mode="reachable"`` is uniform over every point
    such a walk reaches. The diagonal (walks back to the start) is dropped
    and rows are renormalised, so ``p~`` is again a conditional distribution.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), sparse COO or dense
        Row-stochastic.
    n_walk_steps : int
        Extra steps; 0 returns ``P`` (or its uniform support).
    mode : {"sum", "reachable"}, default="sum"

    Returns
    -------
    torch.Tensor of shape (n, n)
        Row-stochastic with a zero diagonal, in ``P``'s layout.
    """
    if mode not in ("sum", "reachable"):
        raise ValueError(f"Unknown propagation {mode!r}; expected 'sum' or 'reachable'.")
    if not P.is_sparse:
        # A dense p (a kernel over all pairs) has dense powers: dense products are the cheap way.
        total, power = P, P
        for _ in range(n_walk_steps):
            power = power @ P
            total = total + power
        return normalize_rows((total > 0).to(P.dtype) if mode == "reachable" else total)
    P = P.coalesce()
    total, power = P, P
    for _ in range(n_walk_steps):
        with warnings.catch_warnings():
            # torch's sparse product goes through CSR and says CSR is "beta".
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
            power = torch.sparse.mm(power, P).coalesce()
        total = (total + power).coalesce()
    if mode == "reachable":
        total = torch.sparse_coo_tensor(
            total.indices(), torch.ones_like(total.values()), total.shape, check_invariants=False
        )
    return normalize_rows(total)


class WalkSampler:
    """Draws neighbours ``j ~ p~(.|i)`` of the propagated distribution by random walks.

    :func:`~sklearn_icon._backend.affinities.graphs.propagate` with ``mode="sum"``
    gives ``p~ ∝ P + P^2 + ... + P^(s+1)`` without its diagonal: a walk on
    ``P`` of a length drawn uniformly from ``1..s+1``, kept when it does not
    end where it started. Sampling those walks gives pairs with exactly that
    distribution while storing only ``P``, whose powers have far more edges
    (``k^(s+1)`` per row).

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), sparse COO
        Row-stochastic one-step distribution, on the CPU.
    n_walk_steps : int
        ``s``, the extra steps.
    """

    def __init__(self, P, n_walk_steps):
        P = P.coalesce()
        rows, cols = P.indices()
        values = P.values().to(torch.float64)
        n = P.shape[0]
        self.n, self.n_walk_steps, self.cols = n, int(n_walk_steps), cols
        counts = torch.bincount(rows, minlength=n)
        self.row_end = counts.cumsum(0)
        # One running sum over all edges: row i's mass lies between
        # cumulative[row_start] and cumulative[row_end], so one sorted
        # search picks the next node of every walk at once.
        self.cumulative = values.cumsum(0)
        offsets = torch.cat([torch.zeros(1, dtype=torch.float64), self.cumulative])
        self.row_base = offsets[self.row_end - counts]
        self.row_mass = offsets[self.row_end] - self.row_base

    def step(self, nodes, generator):
        """One step of the walk from each of ``nodes``."""
        u = torch.rand(nodes.shape, generator=generator, dtype=torch.float64)
        position = torch.searchsorted(self.cumulative, self.row_base[nodes] + u * self.row_mass[nodes], right=True)
        return self.cols[torch.minimum(position, self.row_end[nodes] - 1)]

    def sample(self, anchors, generator):
        """One neighbour per anchor, by a walk of random length.

        Returns
        -------
        neighbours : torch.Tensor of shape (n_anchors,)
        kept : torch.Tensor of bool, shape (n_anchors,)
            False where the walk came back to its anchor: those pairs are
            not in ``p~`` and must be dropped.
        """
        lengths = torch.randint(1, self.n_walk_steps + 2, anchors.shape, generator=generator)
        nodes = anchors
        for t in range(1, self.n_walk_steps + 2):
            nodes = torch.where(lengths >= t, self.step(nodes, generator), nodes)
        return nodes, nodes != anchors


def log_degrees(P):
    """Log degree of each node in the symmetrised graph ``(P + P^T) / 2`` of a row-stochastic ``P``.

    The weights of the ``cluster_degree`` kernel (normalised cuts).
    """
    in_mass = torch.zeros(P.shape[0], dtype=P.dtype, device=P.device).index_add_(0, P.indices()[1], P.values())
    return torch.log(0.5 * (1.0 + in_mass))

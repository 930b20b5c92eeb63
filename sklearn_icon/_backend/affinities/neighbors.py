"""Distances in input space and the nearest-neighbor search behind every sparse p."""

import math

import numpy as np
import scipy.sparse as sp
import torch

#: Metrics computed in torch, on the data's device.
TORCH_METRICS = ("euclidean", "sqeuclidean", "cosine", "manhattan")

METRICS = TORCH_METRICS + ("precomputed",)


def is_torch_metric(metric):
    """Whether ``metric`` is computed here in torch (else by scikit-learn's ``pairwise_distances``)."""
    return isinstance(metric, str) and metric in METRICS


def _pairwise_distances(X, Z, metric, metric_params, n_jobs):
    """Distances of any metric scikit-learn's ``pairwise_distances`` accepts, computed by it on the CPU."""
    from sklearn.metrics import pairwise_distances

    Z = None if Z is X else Z.detach().cpu().numpy()
    dist = pairwise_distances(X.detach().cpu().numpy(), Z, metric=metric, n_jobs=n_jobs, **(metric_params or {}))
    return _checked_distances(dist, metric)


def _checked_distances(dist, metric):
    if (dist < 0).any():
        raise ValueError(f"All distances should be positive, the metric given is not correct: metric={metric!r} "
                         "returned a negative distance.")
    return dist


def kernel_input_distances(X, Z, metric, metric_params=None, n_jobs=None):
    """Return the distances a supervisory kernel is evaluated on.

    The Euclidean metric is squared before it enters the kernel, so
    ``metric="euclidean"`` and ``metric="sqeuclidean"`` give the same
    affinities; every other metric's distances are returned as they are.

    Parameters
    ----------
    X : torch.Tensor of shape (n_a, n_features)
        Query points.
    Z : torch.Tensor of shape (n_b, n_features)
        Reference points.
    metric : str or callable
        One of :data:`TORCH_METRICS`, or any metric (name or callable) that
        :func:`sklearn.metrics.pairwise_distances` accepts, computed by it
        on the CPU.
    metric_params : dict or None, default=None
        Keyword arguments of a metric computed by scikit-learn.
    n_jobs : int or None, default=None
        Processes scikit-learn's ``pairwise_distances`` may use.

    Returns
    -------
    torch.Tensor of shape (n_a, n_b)
        Non-negative kernel inputs.
    """
    if metric in ("euclidean", "sqeuclidean"):
        sq = (X * X).sum(1, keepdim=True)
        sq_z = (Z * Z).sum(1, keepdim=True)
        dist = torch.addmm(sq + sq_z.T, X, Z.T, alpha=-2.0)
        return dist.clamp_min_(0.0)
    if metric == "cosine":
        Xn = X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)
        Zn = Z / Z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (1.0 - Xn @ Zn.T).clamp_min_(0.0)
    if metric == "manhattan":
        return torch.cdist(X, Z, p=1.0)
    dist = _pairwise_distances(X, Z, metric, metric_params, n_jobs)
    return torch.as_tensor(dist, dtype=X.dtype, device=X.device)


#: Largest ``n_samples**2 * n_features`` searched exactly on a CPU by
#: ``method="auto"``: up to about MNIST-70k in 50 dimensions, where the exact
#: blocked search still beats pynndescent, even compiled (benchmarks/RESULTS.md).
EXACT_SEARCH_MAX_WORK = 2.5e11


NEIGHBOR_METHODS = ("auto", "exact", "approximate")

#: Most scores in one block of the exact search (128 MiB in float64); at MNIST-70k, 239-row blocks
#: searched as fast as 1024-row ones (benchmarks/RESULTS.md).
SEARCH_BLOCK_ELEMENTS = 2**24

#: Metrics whose float64 search ranks candidates by a float32 matrix product, then re-ranks them in float64.
FLOAT32_RANKED_METRICS = ("euclidean", "sqeuclidean", "cosine")
#: Candidates kept per row beyond ``n_neighbors`` for the float64 re-ranking: at least this many, or a quarter more.
RERANK_MARGIN = 8


def _rerank(rows, references, candidates, n_neighbors, metric):
    """The ``n_neighbors`` nearest of each row's candidates, by distances computed directly row by row.

    Parameters
    ----------
    rows : torch.Tensor of shape (m, n_features)
    references : torch.Tensor of shape (n_ref, n_features)
    candidates : torch.Tensor of shape (m, n_candidates)
        Indices into ``references``, at least ``n_neighbors`` per row.
    n_neighbors : int
    metric : one of :data:`TORCH_METRICS`

    Returns
    -------
    dist : torch.Tensor of shape (m, n_neighbors)
        Kernel inputs, ascending per row (ties in candidate order).
    idx : torch.Tensor of shape (m, n_neighbors)
    """
    step = max(1, SEARCH_BLOCK_ELEMENTS // max(1, candidates.shape[1] * rows.shape[1]))
    exact = torch.cat(
        [
            pair_distances(rows[a : a + step, None, :], references[candidates[a : a + step]], metric)
            for a in range(0, rows.shape[0], step)
        ]
    )
    exact, order = torch.sort(exact, dim=1, stable=True)
    return exact[:, :n_neighbors].contiguous(), torch.gather(candidates, 1, order[:, :n_neighbors])


def nearest_neighbors(
    X, n_neighbors, metric="euclidean", block_size=1024, method="exact", random_state=None, metric_params=None,
    n_jobs=None,
):
    """Nearest neighbours of every point, excluding the point itself.

    Exact distances are computed in row blocks so memory stays
    ``O(block_size * n)`` rather than ``O(n^2)``; the approximate search is
    pynndescent's nearest-neighbour descent, with the kernel inputs of the
    neighbours it finds computed exactly here.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features) or (n, n)
        Data, dense or sparse COO (sparse feature rows, such as a TF-IDF
        matrix, are searched without densifying them), or a square distance
        matrix when ``metric="precomputed"``: dense, or sparse COO whose
        stored entries are the distances (a missing entry is no neighbour,
        as scikit-learn reads a precomputed sparse graph).
    n_neighbors : int
        Number of neighbours to return, at most ``n - 1``.
    metric : str or callable, default="euclidean"
        One of :data:`METRICS`, or any metric of
        :func:`sklearn.metrics.pairwise_distances` (searched exactly, by
        scikit-learn, on the CPU).
    block_size : int, default=1024
        Most rows per distance block (fewer when a block would hold more
        than :data:`SEARCH_BLOCK_ELEMENTS` scores).
    method : {"exact", "approximate", "auto"}, default="exact"
        ``auto`` searches exactly on a GPU, for precomputed distances and
        other metrics than :data:`TORCH_METRICS`, and while
        ``n**2 * n_features <= EXACT_SEARCH_MAX_WORK``; approximately
        otherwise.
    random_state : int or None, default=None
        Seed of the approximate search.
    metric_params : dict or None, default=None
        Keyword arguments of a metric computed by scikit-learn.
    n_jobs : int or None, default=None
        Processes scikit-learn's search may use.

    Returns
    -------
    dist : torch.Tensor of shape (n, n_neighbors)
        Kernel inputs (squared for the Euclidean metric), ascending per row.
    idx : torch.Tensor of shape (n, n_neighbors)
        Indices of the neighbours.
    """
    n = X.shape[0]
    if not 1 <= n_neighbors <= n - 1:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be between 1 and n_samples - 1 = {n - 1}."
        )
    if X.is_sparse and metric != "precomputed":
        return _sparse_rows_neighbors(X, n_neighbors, metric, method, random_state, metric_params, n_jobs)
    torch_metric = is_torch_metric(metric) and metric != "precomputed"
    if method == "auto":
        exact = X.device.type == "cuda" or not torch_metric or n * n * X.shape[1] <= EXACT_SEARCH_MAX_WORK
        method = "exact" if exact else "approximate"
    if method == "approximate":
        if not torch_metric:
            raise ValueError(
                f"neighbors='approximate' searches feature vectors in one of {TORCH_METRICS}; metric={metric!r} "
                "is searched exactly: use neighbors='exact' or 'auto'."
            )
        return _approximate_neighbors(X, n_neighbors, metric, random_state)
    if method != "exact":
        raise ValueError(f"Unknown neighbour search {method!r}; expected one of {NEIGHBOR_METHODS}.")
    if metric == "precomputed" and X.is_sparse:
        return _sparse_rows_nearest(X, n_neighbors, drop_diagonal=True)
    if not is_torch_metric(metric):
        return _pairwise_neighbors(X, n_neighbors, metric, metric_params, n_jobs)
    # A float64 search ranks by a float32 product (the product 30 % faster
    # on a CPU at MNIST-70k) and re-ranks a margin of candidates by
    # distances computed directly in float64: the same neighbours unless a
    # float32 rounding, on centred data, moves one past the margin.
    reranked = X.dtype == torch.float64 and metric in FLOAT32_RANKED_METRICS
    n_candidates = n_neighbors
    ranking_data = X
    if reranked:
        n_candidates = min(n - 1, n_neighbors + max(RERANK_MARGIN, n_neighbors // 4))
        ranking_data = X if metric == "cosine" else X - X.mean(0)
        # Scaled to unit magnitude, which leaves every ranking as it is: float32 squares overflow past 1e19.
        magnitude = ranking_data.abs().max()
        ranking_data = (ranking_data / magnitude if magnitude > 0 else ranking_data).to(torch.float32)
    scores, finish = _ranking_scores(ranking_data, metric)
    # One buffer for every block: a fresh (block_size x n) tensor per block
    # page-faults its memory in again each time, which took longer than the
    # product itself (benchmarks/RESULTS.md). Its rows are capped so that it
    # holds at most SEARCH_BLOCK_ELEMENTS scores: as fast, in less memory.
    block_size = max(1, min(block_size, SEARCH_BLOCK_ELEMENTS // n))
    buffer = torch.empty((min(block_size, n), n), dtype=ranking_data.dtype, device=X.device)
    dists, idxs = [], []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        block = scores(start, stop, buffer[: stop - start])
        rows = torch.arange(start, stop, device=X.device)
        block[rows - start, rows] = math.inf
        if reranked:
            _, candidates = torch.topk(block, n_candidates, dim=1, largest=False, sorted=False)
            d, i = _rerank(X[start:stop], X, candidates, n_neighbors, metric)
        else:
            d, i = torch.topk(block, n_neighbors, dim=1, largest=False, sorted=True)
            d = finish(d, start, stop)
        dists.append(d)
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


def reference_neighbors(Q, R, n_neighbors, metric="euclidean", metric_params=None, n_jobs=None, block_size=1024):
    """Exact nearest reference points of every query point (a query is not excluded from its own list).

    Parameters
    ----------
    Q : torch.Tensor of shape (m, n_features), or (m, n_ref) when ``metric="precomputed"``
        Query points, or their distances to the reference points (dense, or
        sparse COO whose stored entries are the distances).
    R : torch.Tensor of shape (n_ref, n_features) or None
        Reference points; unused for ``"precomputed"``.
    n_neighbors : int
        Neighbours per query, at most ``n_ref``.
    metric : str or callable, default="euclidean"
        As in :func:`nearest_neighbors`.
    metric_params, n_jobs
        As in :func:`nearest_neighbors`.
    block_size : int, default=1024
        Query rows per distance block.

    Returns
    -------
    dist : torch.Tensor of shape (m, n_neighbors)
        Kernel inputs (squared for the Euclidean metric), ascending per row.
    idx : torch.Tensor of shape (m, n_neighbors)
        Indices into the reference points.
    """
    if metric == "precomputed" and Q.is_sparse:
        return _sparse_rows_nearest(Q, n_neighbors, drop_diagonal=False)
    dists, idxs = [], []
    for start in range(0, Q.shape[0], block_size):
        block = Q[start : start + block_size]
        block = block.clone() if metric == "precomputed" else kernel_input_distances(block, R, metric, metric_params, n_jobs)
        d, i = torch.topk(block, n_neighbors, dim=1, largest=False, sorted=True)
        if is_torch_metric(metric) and metric != "precomputed":
            # The block's matrix product rounds a row's distances depending
            # on the rows beside it: the kept ones are recomputed row by row,
            # so that a query's neighbourhood depends on that query alone.
            d, i = _rerank(Q[start : start + block_size], R, i, n_neighbors, metric)
        dists.append(d)
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


def _pairwise_neighbors(X, n_neighbors, metric, metric_params, n_jobs):
    """Exact neighbours under a metric of scikit-learn's, its distances computed in row chunks."""
    dist, idx = _chunked_neighbors(X.detach().cpu().numpy(), n_neighbors, metric, metric_params, n_jobs)
    return torch.as_tensor(dist, dtype=X.dtype, device=X.device), torch.as_tensor(idx, device=X.device)


def _chunked_neighbors(data, n_neighbors, metric, metric_params, n_jobs):
    """Exact neighbours of the rows of ``data`` (an ndarray, or a scipy sparse matrix where the metric takes one)
    among themselves, by scikit-learn's ``pairwise_distances_chunked``; numpy distances and int64 indices."""
    from sklearn.metrics import pairwise_distances_chunked

    def nearest(chunk, start):
        chunk = _checked_distances(chunk, metric)
        rows = np.arange(chunk.shape[0])
        chunk[rows, rows + start] = np.inf
        idx = np.argpartition(chunk, n_neighbors - 1, axis=1)[:, :n_neighbors]
        dist = np.take_along_axis(chunk, idx, 1)
        order = np.argsort(dist, axis=1, kind="stable")
        return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)

    chunks = list(
        pairwise_distances_chunked(
            data, metric=metric, n_jobs=n_jobs, reduce_func=nearest, **(metric_params or {})
        )
    )
    return np.concatenate([d for d, _ in chunks]), np.concatenate([i for _, i in chunks]).astype(np.int64)


def _sparse_rows_nearest(X, n_neighbors, drop_diagonal):
    """The ``n_neighbors`` smallest stored distances of every row of a sparse matrix (off the diagonal if asked).

    Raises
    ------
    ValueError
        If a row stores fewer than ``n_neighbors`` such distances.
    """
    X = X.coalesce()
    rows, cols = X.indices()
    values = X.values()
    if drop_diagonal:
        off_diagonal = rows != cols
        rows, cols, values = rows[off_diagonal], cols[off_diagonal], values[off_diagonal]
    n = X.shape[0]
    counts = torch.bincount(rows, minlength=n)
    fewest = int(counts.min())
    if fewest < n_neighbors:
        raise ValueError(
            f"{n_neighbors} neighbors per sample are required, but some samples have only {fewest} neighbors in "
            "the precomputed sparse distance matrix. Lower the perplexity (or n_neighbors), or recompute the "
            "matrix with more neighbors."
        )
    # Order by row, then by distance: each row's nearest come first.
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]
    starts = torch.cumsum(counts, 0) - counts
    take = (starts[:, None] + torch.arange(n_neighbors, device=X.device)).reshape(-1)
    chosen = order[take]
    return values[chosen].reshape(n, n_neighbors), cols[chosen].reshape(n, n_neighbors)


def to_scipy_csr(X):
    """A torch sparse COO matrix as a scipy CSR matrix on the CPU."""
    X = X.coalesce().cpu()
    rows, cols = X.indices().numpy()
    return sp.csr_matrix((X.values().detach().numpy(), (rows, cols)), shape=tuple(X.shape))


def _sparse_rows_neighbors(X, n_neighbors, metric, method, random_state, metric_params, n_jobs):
    """Nearest neighbours of sparse feature rows, never densified.

    The exact search is :func:`_chunked_neighbors` over sparse row blocks
    (any metric scikit-learn computes on sparse input); the approximate one is
    pynndescent's, which reads sparse rows itself, with the kept pairs'
    kernel inputs recomputed exactly. ``auto`` searches exactly while
    ``n * nnz`` (the multiply-adds of the sparse products) stays under
    :data:`EXACT_SEARCH_MAX_WORK`.
    """
    csr = to_scipy_csr(X)
    n = csr.shape[0]
    if method == "auto":
        method = "exact" if n * csr.nnz <= EXACT_SEARCH_MAX_WORK else "approximate"
    squared = metric in ("euclidean", "sqeuclidean")
    searched = "euclidean" if metric == "sqeuclidean" else metric
    if method == "exact":
        dist, idx = _chunked_neighbors(csr, n_neighbors, searched, metric_params, n_jobs)
        dist = dist * dist if squared else dist
    elif method == "approximate":
        if metric not in TORCH_METRICS:
            raise ValueError(
                f"neighbors='approximate' searches sparse rows in one of {TORCH_METRICS}; metric={metric!r} is "
                "searched exactly: use neighbors='exact' or 'auto'."
            )
        idx = _approximate_sparse_rows(csr, n_neighbors, searched, random_state)
        dist = _sparse_pair_distances(csr, idx, metric)
        order = np.argsort(dist, axis=1, kind="stable")
        dist, idx = np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
    else:
        raise ValueError(f"Unknown neighbour search {method!r}; expected one of {NEIGHBOR_METHODS}.")
    return (
        torch.as_tensor(dist, dtype=X.dtype, device=X.device),
        torch.as_tensor(idx.astype(np.int64), device=X.device),
    )


def _approximate_sparse_rows(csr, n_neighbors, metric, random_state):
    """pynndescent's neighbours of CSR rows, each row's own index removed."""
    from pynndescent import NNDescent

    n = csr.shape[0]
    found = NNDescent(csr, n_neighbors=n_neighbors + 1, metric=metric, random_state=random_state).neighbor_graph[0]
    if (found < 0).any():
        raise ValueError(
            "The approximate neighbour search left some sparse rows short of neighbours (heavily duplicated "
            "rows?); use neighbors='exact'."
        )
    own = found == np.arange(n)[:, None]
    own[:, -1] |= ~own.any(1)
    return found[~own].reshape(n, n_neighbors)


def _sparse_pair_distances(csr, idx, metric, pairs_per_block=2**16):
    """Kernel inputs between every row of ``csr`` and its neighbours ``idx`` (as :func:`pair_distances`)."""
    if metric == "cosine":
        norms = np.sqrt(np.asarray(csr.multiply(csr).sum(1)).ravel())
        csr = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ csr)
    anchors = np.repeat(np.arange(csr.shape[0]), idx.shape[1])
    neighbours = idx.reshape(-1)
    out = np.empty(anchors.size)
    for start in range(0, anchors.size, pairs_per_block):
        stop = start + pairs_per_block
        difference = csr[anchors[start:stop]] - csr[neighbours[start:stop]]
        if metric == "manhattan":
            out[start:stop] = np.asarray(abs(difference).sum(1)).ravel()
        else:
            out[start:stop] = np.asarray(difference.multiply(difference).sum(1)).ravel()
    if metric == "cosine":
        # |a - b|^2 = 2 (1 - cos) for unit rows.
        out *= 0.5
    return out.reshape(idx.shape)


def _ranking_scores(X, metric):
    """Blocks of scores that order every row like its kernel inputs, and the map back.

    For the Euclidean and cosine metrics the score leaves out what is
    constant along a row (``|x|^2``, the 1 of ``1 - cos``), so one matrix
    product per block gives it; only the neighbours kept are turned into
    kernel inputs. That halves the memory passes over each ``block x n``
    matrix, which dominate the search on a CPU.

    Returns
    -------
    scores : callable
        ``scores(start, stop, out)`` -> ``out``, a tensor of shape
        (stop - start, n) that the scores are written into and the caller
        may modify.
    finish : callable
        ``finish(chosen_scores, start, stop)`` -> kernel inputs of the chosen.
    """
    if metric in ("euclidean", "sqeuclidean"):
        squared_norms = (X * X).sum(1, keepdim=True)
        right = torch.cat([-2.0 * X, squared_norms], 1)
        ones = torch.ones_like(squared_norms)

        def scores(start, stop, out):
            return torch.matmul(torch.cat([X[start:stop], ones[start:stop]], 1), right.T, out=out)

        def finish(chosen, start, stop):
            return (chosen + squared_norms[start:stop]).clamp_min_(0.0)

    elif metric == "cosine":
        unit = X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)
        negated = unit.neg()

        def scores(start, stop, out):
            return torch.matmul(unit[start:stop], negated.T, out=out)

        def finish(chosen, start, stop):
            return (chosen + 1.0).clamp_min_(0.0)

    else:

        def scores(start, stop, out):
            if metric == "precomputed":
                return out.copy_(X[start:stop])
            return out.copy_(kernel_input_distances(X[start:stop], X, metric))

        def finish(chosen, start, stop):
            return chosen

    return scores, finish


def pair_distances(A, B, metric):
    """Kernel inputs between aligned rows ``A[i]`` and ``B[i]``, as :func:`kernel_input_distances`.

    Parameters
    ----------
    A, B : torch.Tensor of shape (..., n_features)
    metric : {"euclidean", "sqeuclidean", "cosine", "manhattan"}

    Returns
    -------
    torch.Tensor of shape (...)
    """
    if metric in ("euclidean", "sqeuclidean"):
        return ((A - B) ** 2).sum(-1)
    if metric == "cosine":
        An = A / A.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        Bn = B / B.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (1.0 - (An * Bn).sum(-1)).clamp_min(0.0)
    if metric == "manhattan":
        return (A - B).abs().sum(-1)
    raise ValueError(f"Unknown metric {metric!r} for an approximate search; expected one of {METRICS[:-1]}.")


def _approximate_neighbors(X, n_neighbors, metric, random_state, max_block_elements=2**24):
    """pynndescent's neighbours, self removed, with exact kernel inputs, ascending per row."""
    from pynndescent import NNDescent

    n, n_features = X.shape
    data = X.detach().to("cpu", torch.float32).numpy()
    search = NNDescent(
        data,
        n_neighbors=n_neighbors + 1,
        metric="euclidean" if metric == "sqeuclidean" else metric,
        random_state=random_state,
    )
    found = torch.as_tensor(search.neighbor_graph[0].astype("int64"))
    if bool((found < 0).any()):
        # The descent left some row short of neighbours (e.g. heavy
        # duplication): an exact search is always complete.
        return nearest_neighbors(X, n_neighbors, metric, method="exact")
    # Drop each row's own index, or its farthest neighbour when duplicates
    # pushed the point itself out of its list.
    own = found == torch.arange(n)[:, None]
    own[:, -1] |= ~own.any(1)
    idx = found[~own].reshape(n, n_neighbors).to(X.device)
    dist = torch.empty((n, n_neighbors), dtype=X.dtype, device=X.device)
    rows_per_block = max(1, max_block_elements // max(1, n_neighbors * n_features))
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        dist[start:stop] = pair_distances(X[start:stop, None, :], X[idx[start:stop]], metric)
    dist, order = torch.sort(dist, dim=1)
    return dist, torch.gather(idx, 1, order)

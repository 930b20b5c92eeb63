"""Distances in input space and the nearest-neighbor search behind every sparse p."""

import math

import torch

METRICS = ("euclidean", "sqeuclidean", "cosine", "manhattan", "precomputed")


def kernel_input_distances(X, Z, metric):
    """Return the distances a supervisory kernel is evaluated on.

    As in t-SNE, the Euclidean metric is squared before it enters the
    kernel, so ``metric="euclidean"`` and ``metric="sqeuclidean"`` give the
    same affinities.

    Parameters
    ----------
    X : torch.Tensor of shape (n_a, n_features)
        Query points.
    Z : torch.Tensor of shape (n_b, n_features)
        Reference points.
    metric : {"euclidean", "sqeuclidean", "cosine", "manhattan"}
        Input-space metric.

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
    raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS}.")


#: Largest ``n_samples**2 * n_features`` searched exactly on a CPU by
#: ``method="auto"``: up to about MNIST-70k in 50 dimensions, where the exact
#: blocked search still beats pynndescent, even compiled (benchmarks/RESULTS.md).
EXACT_SEARCH_MAX_WORK = 2.5e11


NEIGHBOR_METHODS = ("auto", "exact", "approximate")


def nearest_neighbors(X, n_neighbors, metric="euclidean", block_size=1024, method="exact", random_state=None):
    """Nearest neighbours of every point, excluding the point itself.

    Exact distances are computed in row blocks so memory stays
    ``O(block_size * n)`` rather than ``O(n^2)``; the approximate search is
    pynndescent's nearest-neighbour descent, with the kernel inputs of the
    neighbours it finds computed exactly here.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features) or (n, n)
        Data, or a square distance matrix when ``metric="precomputed"``.
    n_neighbors : int
        Number of neighbours to return, at most ``n - 1``.
    metric : str, default="euclidean"
        One of :data:`METRICS`.
    block_size : int, default=1024
        Rows per distance block.
    method : {"exact", "approximate", "auto"}, default="exact"
        ``auto`` searches exactly on a GPU, for precomputed distances and
        while ``n**2 * n_features <= EXACT_SEARCH_MAX_WORK``, approximately
        otherwise.
    random_state : int or None, default=None
        Seed of the approximate search.

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
    if method == "auto":
        exact = X.device.type == "cuda" or metric == "precomputed" or n * n * X.shape[1] <= EXACT_SEARCH_MAX_WORK
        method = "exact" if exact else "approximate"
    if method == "approximate":
        return _approximate_neighbors(X, n_neighbors, metric, random_state)
    if method != "exact":
        raise ValueError(f"Unknown neighbour search {method!r}; expected one of {NEIGHBOR_METHODS}.")
    scores, finish = _ranking_scores(X, metric)
    dists, idxs = [], []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        block = scores(start, stop)
        rows = torch.arange(start, stop, device=X.device)
        block[rows - start, rows] = math.inf
        d, i = torch.topk(block, n_neighbors, dim=1, largest=False, sorted=True)
        dists.append(finish(d, start, stop))
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


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
        ``scores(start, stop)`` -> tensor of shape (stop - start, n), a fresh
        buffer the caller may modify.
    finish : callable
        ``finish(chosen_scores, start, stop)`` -> kernel inputs of the chosen.
    """
    if metric in ("euclidean", "sqeuclidean"):
        squared_norms = (X * X).sum(1, keepdim=True)
        right = torch.cat([-2.0 * X, squared_norms], 1)
        ones = torch.ones_like(squared_norms)

        def scores(start, stop):
            return torch.cat([X[start:stop], ones[start:stop]], 1) @ right.T

        def finish(chosen, start, stop):
            return (chosen + squared_norms[start:stop]).clamp_min_(0.0)

    elif metric == "cosine":
        unit = X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)

        def scores(start, stop):
            return unit[start:stop] @ unit.T.neg()

        def finish(chosen, start, stop):
            return (chosen + 1.0).clamp_min_(0.0)

    else:

        def scores(start, stop):
            if metric == "precomputed":
                return X[start:stop].clone()
            return kernel_input_distances(X[start:stop], X, metric)

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

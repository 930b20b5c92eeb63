"""Supervisory neighbour distributions p(j|i), built from the input data.

Every function here takes and returns torch tensors and knows nothing of
scikit-learn. A supervisory distribution is returned either as a dense
``(n, n)`` tensor or as a coalesced sparse COO tensor; in both cases row ``i``
holds ``p(.|i)`` and the diagonal is zero, since a point is never its own
neighbour.
"""

import math
import warnings

import torch

SUPERVISORY_KERNELS = ("gaussian", "student_t", "knn", "precomputed", "identity")
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
#: ``method="auto"``: MNIST-70k reduced to 50 dimensions, 91 neighbours, takes
#: 16 s exactly on two cores; pynndescent took 70 s in a fresh process (most
#: of it numba compilation) and 25 s once compiled.
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


def _log_kernel(dist, precision, kernel):
    """Unnormalised log affinities of a supervisory kernel at a precision."""
    if kernel == "gaussian":
        return -precision * dist
    if kernel == "student_t":
        return -torch.log1p(precision * dist)
    raise ValueError(f"Kernel {kernel!r} has no bandwidth to calibrate.")


def calibrate_to_perplexity(dist, perplexity, kernel="gaussian", tol=1e-5, max_iter=100):
    """Per-point bandwidths that give each row the requested perplexity.

    A vectorised bisection on the precision ``beta_i`` of every row at once,
    as t-SNE does: ``p(j|i)`` is proportional to ``exp(-beta_i d_ij)`` for the
    Gaussian kernel and to ``1 / (1 + beta_i d_ij)`` for the Student-t
    (Cauchy) kernel, and ``beta_i`` is chosen so that the entropy of
    ``p(.|i)`` equals ``log(perplexity)``. Computed in float64.

    Parameters
    ----------
    dist : torch.Tensor of shape (n, k)
        Kernel inputs from each point to its candidate neighbours; ``inf``
        marks a non-neighbour.
    perplexity : float
        Target perplexity, smaller than ``k``.
    kernel : {"gaussian", "student_t"}, default="gaussian"
        Kernel shape.
    tol : float, default=1e-5
        Tolerance on the entropy, in nats.
    max_iter : int, default=100
        Bisection steps.

    Returns
    -------
    torch.Tensor of shape (n, k)
        Row-stochastic conditional probabilities, in ``dist``'s dtype.
    """
    d = dist.to(torch.float64)
    target = math.log(perplexity)
    # Start each row at the inverse of its mean finite kernel input, close
    # to the answer whatever the data's scale, so the bisection needs fewer
    # doublings or halvings to bracket it.
    finite = torch.isfinite(d)
    mean = torch.where(finite, d, torch.zeros_like(d)).sum(1) / finite.sum(1).clamp_min(1)
    beta = torch.where(mean > 0, 1.0 / mean, torch.ones_like(mean))
    lo = torch.zeros_like(beta)
    hi = torch.full_like(beta, math.inf)
    for _ in range(max_iter):
        # H = log Z - sum_j p_j log k_j; a non-neighbour's log k of -inf
        # becomes a finite floor so that 0 * log k stays 0.
        log_k = _log_kernel(d, beta[:, None], kernel).clamp_min_(-1e300)
        log_norm = torch.logsumexp(log_k, dim=1)
        entropy = log_norm - (torch.exp(log_k - log_norm[:, None]) * log_k).sum(1)
        diff = entropy - target
        if bool((diff.abs() <= tol).all()):
            break
        too_flat = diff > 0
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        beta = torch.where(
            torch.isinf(hi), beta * 2.0, (lo + hi) / 2.0
        )
    log_p = torch.log_softmax(_log_kernel(d, beta[:, None], kernel), dim=1)
    return log_p.exp().to(dist.dtype)


def fixed_bandwidth_affinity(dist, bandwidth, kernel="gaussian"):
    """Conditional affinities with one bandwidth shared by all points.

    Parameters
    ----------
    dist : torch.Tensor of shape (n, k)
        Kernel inputs; ``inf`` marks a non-neighbour (e.g. the point itself).
    bandwidth : float
        ``sigma``: the Gaussian is ``exp(-d / (2 sigma^2))``, the Student-t
        (Cauchy) kernel ``1 / (1 + d / sigma^2)``.
    kernel : {"gaussian", "student_t"}, default="gaussian"

    Returns
    -------
    torch.Tensor of shape (n, k)
        Row-stochastic conditional probabilities.
    """
    precision = 1.0 / (2.0 * bandwidth**2) if kernel == "gaussian" else 1.0 / bandwidth**2
    return torch.softmax(_log_kernel(dist, precision, kernel), dim=1)


def rows_to_sparse(values, idx, n):
    """Sparse COO matrix whose row ``i`` holds ``values[i]`` at ``idx[i]``."""
    k = idx.shape[1]
    rows = torch.arange(n, device=idx.device).repeat_interleave(k)
    indices = torch.stack([rows, idx.reshape(-1)])
    return torch.sparse_coo_tensor(indices, values.reshape(-1), (n, n), check_invariants=False).coalesce()


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


#: Unlabelled samples carry this label, as in scikit-learn's semi-supervised estimators.
UNLABELLED = -1


def shared_label_distribution(labels, dtype=torch.float64):
    """``p(j|i)`` uniform over the other samples that share ``i``'s label.

    SupCon's supervisory distribution (Theorem 6) when the labels are
    classes, InfoNCE's (Theorem 3) when they name the item each sample is a
    view of. Samples labelled :data:`UNLABELLED`, and samples alone with
    their label, get an empty row: they have no partner to be drawn.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,), integer
        Label (or group id) per sample, ``-1`` for none.
    dtype : torch.dtype, default=torch.float64

    Returns
    -------
    torch.Tensor of shape (n, n), sparse COO
        Rows sum to one where the sample has a partner, to zero elsewhere.

    Examples
    --------
    >>> import torch
    >>> shared_label_distribution(torch.tensor([0, 0, 1, 1, 1, -1])).to_dense()[2]
    tensor([0.0000, 0.0000, 0.0000, 0.5000, 0.5000, 0.0000], dtype=torch.float64)
    """
    n = labels.shape[0]
    labelled = torch.nonzero(labels != UNLABELLED).flatten()
    order = labelled[torch.argsort(labels[labelled], stable=True)]
    _, sizes = torch.unique_consecutive(labels[order], return_counts=True)
    # Every ordered pair within each label's run of ``order``, without a
    # loop over labels (InfoNCE has one label per item, tens of thousands).
    # Member m of a label of size k pairs with the k members of its run, m included.
    size_of = sizes.repeat_interleave(sizes)
    run_start_of = (sizes.cumsum(0) - sizes).repeat_interleave(sizes)
    first_pair_of = size_of.cumsum(0) - size_of
    size_per_pair = size_of.repeat_interleave(size_of)
    within_run = torch.arange(size_per_pair.numel(), device=labels.device) - first_pair_of.repeat_interleave(size_of)
    rows = order.repeat_interleave(size_of)
    cols = order[run_start_of.repeat_interleave(size_of) + within_run]
    off_diagonal = rows != cols
    values = 1.0 / (size_per_pair[off_diagonal].to(dtype) - 1.0)
    indices = torch.stack([rows[off_diagonal], cols[off_diagonal]])
    return torch.sparse_coo_tensor(indices, values, (n, n), check_invariants=False).coalesce()


def mix_label_distribution(P, labels, weight):
    """``(1 - w) p_data + w p_label`` on the rows whose sample has label partners.

    Rows without a partner (unlabelled samples, singleton labels) keep
    ``p_data``: semi-supervised data use the labels they have and the
    geometry everywhere.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Row-stochastic conditional ``p_data``.
    labels : torch.Tensor of shape (n,), integer
        Label or group id per sample, ``-1`` for none.
    weight : float in [0, 1]
        Weight ``w`` of the label distribution.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Row-stochastic, in ``P``'s layout.
    """
    label_p = shared_label_distribution(labels, dtype=P.dtype)
    has_partner = torch.zeros(P.shape[0], dtype=P.dtype, device=P.device)
    has_partner.index_fill_(0, label_p.indices()[0].unique(), 1.0)
    data_scale = 1.0 - weight * has_partner
    if P.is_sparse:
        P = P.coalesce()
        rows = P.indices()[0]
        data = torch.sparse_coo_tensor(P.indices(), P.values() * data_scale[rows], P.shape, check_invariants=False)
        return (data + weight * label_p).coalesce()
    return P * data_scale[:, None] + weight * label_p.to_dense()


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


def uniform_mass(n, normalization):
    """Probability the uniform distribution puts on one off-diagonal entry.

    A point is never its own neighbour, so the uniform distribution spreads
    over the ``n - 1`` other points of a row (``normalization="conditional"``)
    or over all ``n (n - 1)`` ordered pairs (``normalization="joint"``).
    """
    return 1.0 / (n - 1) if normalization == "conditional" else 1.0 / (n * (n - 1))


def debias(P, alpha, normalization):
    """Mix a supervisory distribution with the uniform one: ``(1-a) p + a u``.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
    alpha : float in [0, 1]
    normalization : {"conditional", "joint"}

    Returns
    -------
    torch.Tensor of shape (n, n)
        Dense when ``alpha > 0`` (the uniform part touches every pair), else ``P``.
    """
    if alpha == 0:
        return P
    n = P.shape[0]
    dense = P.to_dense() if P.is_sparse else P
    out = (1.0 - alpha) * dense + alpha * uniform_mass(n, normalization)
    out.fill_diagonal_(0.0)
    return out


def supervisory_distribution(
    X,
    *,
    kernel="gaussian",
    normalization="joint",
    metric="euclidean",
    perplexity=30.0,
    n_neighbors=15,
    bandwidth=None,
    neighbors="exact",
    random_state=None,
    labels=None,
    label_weight=0.0,
):
    """Build the supervisory distribution ``p`` of a data set.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features) or (n, n)
        Data; a square distance matrix when ``metric="precomputed"``; a
        square affinity matrix (dense or sparse COO) when
        ``kernel="precomputed"``.
    kernel : {"gaussian", "student_t", "knn", "precomputed", "identity"}, default="gaussian"
        ``gaussian`` and ``student_t`` calibrate a bandwidth per point to the
        ``perplexity`` over its ``min(n - 1, 3 perplexity + 1)`` nearest
        neighbours, as scikit-learn's Barnes-Hut t-SNE and openTSNE do, or
        use one fixed ``bandwidth`` over all points; ``knn`` is uniform over
        the ``n_neighbors`` nearest neighbours; ``precomputed`` normalises
        the user's affinities; ``identity`` is ``p(j|i) = 1[i = j]``, each
        point its own only neighbour (PCA's ``p``, Theorem 2 of the I-Con
        paper; the learned ``q`` must then include the self pair).
    normalization : {"joint", "conditional"}, default="joint"
        ``joint`` symmetrises into t-SNE's joint distribution.
    metric : str, default="euclidean"
        One of :data:`METRICS`.
    perplexity : float, default=30.0
    n_neighbors : int, default=15
    bandwidth : float or None, default=None
    neighbors : {"exact", "approximate", "auto"}, default="exact"
        Neighbour search (see :func:`nearest_neighbors`).
    random_state : int or None, default=None
        Seed of an approximate search.
    labels : torch.Tensor of shape (n,) or None, default=None
        Class or group id per sample (``-1`` for none), mixed into the
        conditional ``p`` with :func:`mix_label_distribution` before a joint
        symmetrisation.
    label_weight : float in [0, 1], default=0.0
        Weight of the label distribution.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Sparse COO when built from neighbours, dense for a fixed bandwidth
        or dense precomputed affinities.
    """
    n = X.shape[0]
    if kernel == "precomputed":
        P = normalize_rows(X)
    elif kernel == "identity":
        diagonal = torch.arange(n, device=X.device)
        P = torch.sparse_coo_tensor(
            torch.stack([diagonal, diagonal]), torch.ones(n, dtype=torch.float64, device=X.device), (n, n), check_invariants=False
        ).coalesce()
    elif kernel == "knn":
        _, idx = nearest_neighbors(X, n_neighbors, metric, method=neighbors, random_state=random_state)
        P = uniform_knn_affinity(idx, n).to(X.dtype)
    elif kernel not in ("gaussian", "student_t"):
        raise ValueError(f"Unknown supervisory kernel {kernel!r}; expected one of {SUPERVISORY_KERNELS}.")
    elif bandwidth is None:
        k = min(n - 1, int(3.0 * perplexity + 1))
        dist, idx = nearest_neighbors(X, k, metric, method=neighbors, random_state=random_state)
        P = rows_to_sparse(calibrate_to_perplexity(dist, perplexity, kernel), idx, n)
    else:
        dist = X.clone() if metric == "precomputed" else kernel_input_distances(X, X, metric)
        dist.fill_diagonal_(math.inf)
        P = fixed_bandwidth_affinity(dist, bandwidth, kernel)
    if labels is not None and label_weight > 0:
        P = mix_label_distribution(P, labels, label_weight)
    if normalization == "joint":
        P = symmetrize_joint(P)
    return P


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
    P : torch.Tensor of shape (n, n), sparse COO
        Row-stochastic.
    n_walk_steps : int
        Extra steps; 0 returns ``P`` (or its uniform support).
    mode : {"sum", "reachable"}, default="sum"

    Returns
    -------
    torch.Tensor of shape (n, n)
        Sparse COO, row-stochastic, zero diagonal.
    """
    if mode not in ("sum", "reachable"):
        raise ValueError(f"Unknown propagation {mode!r}; expected 'sum' or 'reachable'.")
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

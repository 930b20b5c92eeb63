"""Supervisory distributions p(j|i): who should be whose neighbor, from the input data.

Every function here takes and returns torch tensors and knows nothing of
scikit-learn. A supervisory distribution is returned either as a dense
``(n, n)`` tensor or as a coalesced sparse COO tensor; in both cases row ``i``
holds ``p(.|i)`` and the diagonal is zero, since a point is never its own
neighbor (PCA's ``identity`` is the one exception).

The submodules hold the parts: :mod:`.neighbors` (distances and the
neighbor search), :mod:`.calibration` (bandwidths per point),
:mod:`.graphs` (sparse rows, k-NN graphs, propagation and walk sampling)
and :mod:`.labels` (classes and groups).
"""

import math
import time

import torch

from ..optim import announce
from .calibration import calibrate_to_perplexity, fixed_bandwidth_affinity
from .graphs import normalize_rows, rows_to_sparse, symmetrize_joint, uniform_knn_affinity
from .labels import mix_label_distribution
from .neighbors import kernel_input_distances, nearest_neighbors, reference_neighbors

SUPERVISORY_KERNELS = ("gaussian", "student_t", "knn", "precomputed", "identity")


def _kernel_inputs(dist, metric, squared_metric):
    """The kernel's inputs from a metric's distances: squared for every metric with ``squared_metric``
    (TSNE's convention), the Euclidean one already is (see :func:`kernel_input_distances`)."""
    return dist * dist if squared_metric and metric != "euclidean" else dist


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
    metric_params=None,
    n_jobs=None,
    squared_metric=False,
    verbose=0,
    prefix="sklearn_icon",
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
    metric : str or callable, default="euclidean"
        One of :data:`METRICS`, or any metric of
        :func:`sklearn.metrics.pairwise_distances` (see
        :func:`nearest_neighbors`).
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
    metric_params : dict or None, default=None
        Keyword arguments of a metric computed by scikit-learn.
    n_jobs : int or None, default=None
        Processes scikit-learn's distances may use.
    squared_metric : bool, default=False
        Square every metric's distances before the kernel, as
        scikit-learn's ``TSNE`` does (precomputed distances included);
        otherwise only the Euclidean metric is squared (see
        :func:`kernel_input_distances`).
    verbose : int, default=0
        Report the neighbour search and the calibration, in the lines
        scikit-learn's ``TSNE`` prints.
    prefix : str, default="sklearn_icon"
        Name that starts each line.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Sparse COO when built from neighbours, dense for a fixed bandwidth
        or dense precomputed affinities.
    """
    n = X.shape[0]
    search = dict(method=neighbors, random_state=random_state, metric_params=metric_params, n_jobs=n_jobs)
    if kernel == "precomputed":
        P = normalize_rows(X)
    elif kernel == "identity":
        diagonal = torch.arange(n, device=X.device)
        P = torch.sparse_coo_tensor(
            torch.stack([diagonal, diagonal]), torch.ones(n, dtype=torch.float64, device=X.device), (n, n), check_invariants=False
        ).coalesce()
    elif kernel == "knn":
        _, idx = nearest_neighbors(X, n_neighbors, metric, **search)
        P = uniform_knn_affinity(idx, n).to(X.dtype)
    elif kernel not in ("gaussian", "student_t"):
        raise ValueError(f"Unknown supervisory kernel {kernel!r}; expected one of {SUPERVISORY_KERNELS}.")
    elif bandwidth is None:
        k = min(n - 1, int(3.0 * perplexity + 1))
        announce(verbose, prefix, f"Computing {k} nearest neighbors...")
        tic = time.perf_counter()
        dist, idx = nearest_neighbors(X, k, metric, **search)
        announce(verbose, prefix, f"Computed neighbors for {n} samples in {time.perf_counter() - tic:.3f}s...")
        conditional, precision = calibrate_to_perplexity(
            _kernel_inputs(dist, metric, squared_metric), perplexity, kernel, return_precision=True
        )
        announce(verbose, prefix, f"Computed conditional probabilities for sample {n} / {n}")
        # TSNE's figure: the width of the mean precision, sqrt(1 / mean(beta)).
        announce(verbose, prefix, f"Mean sigma: {float(precision.mean().rsqrt()):.6f}")
        P = rows_to_sparse(conditional, idx, n)
    else:
        if metric == "precomputed" and X.is_sparse:
            # A distance not stored is no neighbour, as scikit-learn reads a sparse graph.
            sparse = X.coalesce()
            dist = torch.full(X.shape, math.inf, dtype=X.dtype, device=X.device)
            dist[sparse.indices()[0], sparse.indices()[1]] = sparse.values()
        elif metric == "precomputed":
            dist = X.clone()
        else:
            dist = kernel_input_distances(X, X, metric, metric_params, n_jobs)
        dist = _kernel_inputs(dist, metric, squared_metric)
        dist.fill_diagonal_(math.inf)
        P = fixed_bandwidth_affinity(dist, bandwidth, kernel)
    if labels is not None and label_weight > 0:
        P = mix_label_distribution(P, labels, label_weight)
    if normalization == "joint":
        P = symmetrize_joint(P)
    return P


def placement_distribution(
    Q,
    R,
    *,
    kernel="gaussian",
    metric="euclidean",
    perplexity=30.0,
    n_neighbors=15,
    bandwidth=None,
    metric_params=None,
    n_jobs=None,
    squared_metric=False,
    n_nearest=0,
):
    """The supervisory rows ``p(.|i)`` of new points over fixed reference points.

    openTSNE's affinities of new points (``TSNEEmbedding.transform``): each
    query's distribution is over the reference points only, computed as in
    :func:`supervisory_distribution` for the training points, but never
    symmetrised, so a row depends on its own query alone.

    Parameters
    ----------
    Q : torch.Tensor of shape (m, n_features)
        New points; with ``metric="precomputed"`` their distances to the
        reference points, shape (m, n_ref); with ``kernel="precomputed"``
        their affinities to them.
    R : torch.Tensor of shape (n_ref, n_features) or None
        Reference points (None for a precomputed ``Q``).
    kernel, metric, perplexity, n_neighbors, bandwidth, metric_params, n_jobs, squared_metric
        As in :func:`supervisory_distribution`.
    n_nearest : int, default=0
        Also return the indices of this many nearest reference points.

    Returns
    -------
    P : torch.Tensor of shape (m, n_ref)
        Sparse COO, rows summing to one.
    nearest : torch.Tensor of shape (m, n_nearest) or None
        Indices of the nearest reference points, closest first (None for
        precomputed affinities).
    """
    m = Q.shape[0]
    n_ref = Q.shape[1] if R is None else R.shape[0]
    if kernel == "precomputed":
        rows = Q.to_dense() if Q.is_sparse else Q
        mass = rows.sum(1, keepdim=True)
        if bool((mass <= 0).any()):
            raise ValueError("Every new point needs a positive affinity to some reference point.")
        return (rows / mass).to_sparse().coalesce(), None
    if kernel not in ("gaussian", "student_t", "knn"):
        raise ValueError(f"The supervisory kernel {kernel!r} has no distribution for new points.")
    if kernel == "knn":
        k = n_neighbors
    elif bandwidth is None:
        k = min(n_ref, int(3.0 * perplexity + 1))
    else:
        k = n_ref
    dist, idx = reference_neighbors(Q, R, max(k, min(n_nearest, n_ref)), metric, metric_params, n_jobs)
    nearest = idx[:, :n_nearest] if n_nearest else None
    dist, idx = dist[:, :k], idx[:, :k]
    if kernel == "knn":
        values = torch.full(idx.shape, 1.0 / k, dtype=Q.dtype, device=Q.device)
    else:
        dist = _kernel_inputs(dist, metric, squared_metric)
        if bandwidth is None:
            values = calibrate_to_perplexity(dist, perplexity, kernel)
        else:
            values = fixed_bandwidth_affinity(dist, bandwidth, kernel)
    return rows_to_sparse(values, idx, m, n_columns=n_ref), nearest

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

import torch

from .calibration import calibrate_to_perplexity, fixed_bandwidth_affinity
from .graphs import normalize_rows, rows_to_sparse, symmetrize_joint, uniform_knn_affinity
from .labels import mix_label_distribution
from .neighbors import kernel_input_distances, nearest_neighbors

SUPERVISORY_KERNELS = ("gaussian", "student_t", "knn", "precomputed", "identity")


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

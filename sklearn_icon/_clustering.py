"""IConClustering: a drop-in for KMeans / SpectralClustering built on the I-Con loss."""

import warnings
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, _fit_context
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.manifold import SpectralEmbedding
from sklearn.metrics.pairwise import PAIRWISE_KERNEL_FUNCTIONS, euclidean_distances, pairwise_kernels
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._backend.affinities import supervisory_distribution
from ._backend.affinities.graphs import (
    WalkSampler,
    knn_graph,
    log_degrees,
    normalize_rows,
    propagate,
    weight_neighbors,
)
from ._backend.affinities.neighbors import to_scipy_csr
from ._backend.initialization import (
    smoothed_logits,
    soft_kmeans_linear,
    soft_kmeans_temperature,
    squared_distances,
    unit_spread,
)
from ._backend.kernels.cluster import CLUSTER_KERNELS
from ._backend.mappers import FreeLogits, build_user_module, make_mapper
from ._backend.objectives.cluster import (
    ExactClusterObjective,
    SampledClusterObjective,
    csne_loss,
    gaussian_log_normalizers,
    prepared_cluster_loss,
)
from ._backend.training import train_restarts
from ._base import (
    _BaseNeighborICon,
    apply_mapper,
    check_memory,
    check_neighbor_search,
    check_neighborhood_sizes,
    check_precomputed,
    fit_standardizer,
    has_negative_entry,
    keep_state_on_failure,
    make_generator,
    principal_projection,
    resolve_device,
    standardized_tensor,
    to_torch,
    torch_threads,
)

_CLUSTER_MAPPERS = ("auto", "linear", "mlp", "table")

#: Affinities built from a neighbour search (or given), beside the kernels of ``pairwise_kernels``.
_GRAPH_AFFINITIES = ("nearest_neighbors", "gaussian", "precomputed", "precomputed_nearest_neighbors")
#: Affinities that read ``X`` as a matrix over the samples instead of features.
_MATRIX_AFFINITIES = ("precomputed", "precomputed_nearest_neighbors")
#: The deprecated ``supervisory`` values and the ``affinity`` each now is.
_SUPERVISORY_TO_AFFINITY = MappingProxyType(
    {"knn": "nearest_neighbors", "gaussian": "gaussian", "precomputed": "precomputed"}
)

#: Anchors of the fixed sample on which mini-batch restarts are compared.
_EVALUATION_PAIRS = 65536

#: Steps every restart runs before the restarts are compared ...
SCREEN_STEPS = 100
#: ... and how many of the lowest loss then run on to convergence.
SCREEN_KEEP = 2

#: ``n_init="auto"``: restarts of a full-batch fit ...
DEFAULT_N_INIT = 4
#: ... and of a mini-batch one, whose restarts are not screened (MNIST-70k's pixels, seeds 0-2:
#: 0.868 / 0.725 / 0.870 with four, 0.961 / 0.873 / 0.870 with eight; benchmarks/RESULTS.md).
MINIBATCH_N_INIT = 8

#: ``batch_size="auto"``: the exact full-batch loss up to this many samples,
#: mini-batches of ``AUTO_BATCH_SIZE`` anchors beyond.
FULL_BATCH_MAX_SAMPLES = 2000
AUTO_BATCH_SIZE = 4096


def _name(value):
    """A parameter value for a message: its repr, or "a callable"."""
    return "a callable" if callable(value) else repr(value)


def _weighted_mean(X, weight, members):
    """Mean of the member rows (dense or sparse ``X``), weighted when the members' weights have mass."""
    rows = X[members]
    member_weight = None if weight is None else weight[members]
    if member_weight is None or not member_weight.sum() > 0:
        member_weight = np.ones(rows.shape[0])
    return np.asarray(rows.T @ member_weight).ravel() / member_weight.sum()


def _weighted_inertia(X, centres, labels, weight):
    """Sum of the (weighted) squared distances of the rows of ``X`` to the centre of their label.

    A sparse ``X`` is expanded as ``|x|^2 - 2 x . c + |c|^2`` and never
    densified; a dense one is subtracted directly (no cancellation).
    """
    if sp.issparse(X):
        squared = squared_distances(X, centres)[np.arange(X.shape[0]), labels]
    else:
        squared = ((X - centres[labels]) ** 2).sum(axis=1)
    return float(squared.sum() if weight is None else squared @ weight)


def spectral_coordinates(affinity, n_components, random_state):
    """The spectral embedding ``SpectralClustering`` clusters: ``D^-1/2`` times the top eigenvectors of ``D^-1/2 A D^-1/2``.

    ``A`` is symmetrised first. The leading eigenvectors of the normalised
    affinity are found by Lanczos iteration without shift-invert:
    :func:`sklearn.manifold.spectral_embedding` factorises the Laplacian
    for its shift-invert ARPACK, which took 345 s and 2.2 GB on a 20,000-node
    10-NN graph (benchmarks/RESULTS.md) where this takes a fraction of a
    second for the same clustering.

    Parameters
    ----------
    affinity : ndarray or sparse matrix of shape (n, n)
        Non-negative, every row with positive mass.
    n_components : int
    random_state : numpy.random.RandomState
        Seeds Lanczos's start vector.

    Returns
    -------
    ndarray of shape (n, n_components)
    """
    affinity = sp.csr_matrix(affinity) if sp.issparse(affinity) else np.asarray(affinity, dtype=np.float64)
    affinity = 0.5 * (affinity + affinity.T)
    n = affinity.shape[0]
    inverse_root = 1.0 / np.sqrt(np.asarray(affinity.sum(axis=1)).ravel())
    if sp.issparse(affinity):
        normalized = sp.diags(inverse_root) @ affinity @ sp.diags(inverse_root)
    else:
        normalized = inverse_root[:, None] * affinity * inverse_root[None, :]
    if n <= max(2 * n_components + 1, 200):
        dense = normalized.toarray() if sp.issparse(normalized) else normalized
        vectors = np.linalg.eigh(dense)[1][:, ::-1][:, :n_components]
    else:
        start = random_state.uniform(-1.0, 1.0, n)
        vectors = eigsh(normalized, k=n_components, which="LA", v0=start)[1][:, ::-1]
    return vectors * inverse_root[:, None]


def _projected(X, projection):
    """``X`` centred and projected onto the fitted principal axes ``projection = (mean, axes)``, or as it is (None)."""
    if projection is None:
        return X
    mean, axes = projection
    return (np.asarray(X, dtype=np.float64) - mean) @ axes


def _is_inductive(estimator):
    return estimator._mapper_choice() != "table"


def _has_features(estimator):
    """Whether the fit sees features (so centres live in feature space), not a precomputed matrix."""
    return not estimator._precomputed_input


class IConClustering(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, _BaseNeighborICon):
    """Clustering by the I-Con loss: debiased InfoNCE clustering on a k-NN graph.

    Learns soft assignments ``phi = softmax(f(x))`` so that the shared-cluster
    distribution ``q(j|i) = sum_c phi_ic phi_jc / sum_k phi_kc`` (the
    probability that a point drawn from ``i``'s cluster is ``j``) matches a
    supervisory neighbour distribution ``p`` over the data: by default
    uniform over the ``n_neighbors`` nearest neighbours, symmetrised and
    widened by ``n_walk_steps`` steps of neighbour propagation (Alshammari
    et al., ICLR 2025, sections 3.3 and 4). The loss is computed exactly over
    the whole data set from the edges of ``p`` and the cluster masses, never
    an ``n x n`` matrix. With a ``linear`` or ``mlp`` mapper the fitted model
    assigns new points with :meth:`predict`.

    Sparse features (a TF-IDF matrix, as ``KMeans`` takes it) stay sparse
    throughout: the neighbour search multiplies sparse rows, the mapper's
    first layer multiplies them as CSR, and the centres, ``inertia_``,
    ``transform`` and ``score`` are computed from them as they are. They are
    scaled by one scale for all features and not centred (centring would
    densify them; see the ``mapper`` parameter).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters ``C`` the soft assignments range over; clusters no
        training point ends up in are dropped from ``labels_``.
    affinity : str or callable, default="nearest_neighbors"
        The supervisory distribution ``p``, named and chosen as in
        :class:`~sklearn.cluster.SpectralClustering` (the I-Con estimators
        for embedding and classification call it ``supervisory``). Every
        affinity matrix ``A`` becomes ``p(j|i) = A_ij / sum_k A_ik`` over
        ``j != i``, then is widened by ``n_walk_steps``.

        - ``"nearest_neighbors"``: the symmetrised graph of the
          ``n_neighbors`` nearest neighbours in ``metric`` (each point's own
          ``n_neighbors`` others; ``SpectralClustering`` counts the point
          itself among them).
        - ``"precomputed"``: ``X`` is a square non-negative affinity matrix,
          dense or sparse; a sparse one stays sparse throughout.
        - ``"precomputed_nearest_neighbors"``: ``X`` is a square distance
          matrix, dense or sparse (its stored entries are the distances),
          and ``p`` is the symmetrised graph of its ``n_neighbors``
          smallest entries per row.
        - a kernel name of :func:`sklearn.metrics.pairwise.pairwise_kernels`
          (``"rbf"``, ``"laplacian"``, ``"poly"``, ``"cosine"``, ...) or a
          callable ``affinity(x, y) -> float`` as that function takes it:
          the kernel matrix of ``X``, with ``gamma``, ``degree``, ``coef0``
          and ``kernel_params``. It is dense: ``n_samples ** 2`` floats.
          It must not be negative (``linear``, ``poly``, ``sigmoid`` and
          ``cosine`` can be).
        - ``"gaussian"``: I-Con's own, the perplexity-calibrated Gaussian of
          t-SNE over ``3 * perplexity + 1`` neighbours (with
          ``divergence="reverse"``, a Gaussian of one ``bandwidth`` over all
          points).
    gamma : float, default=1.0
        Kernel coefficient of ``rbf``, ``poly``, ``sigmoid``, ``laplacian``
        and ``chi2`` affinities; ignored by the others, as in
        ``SpectralClustering``.
    degree : float, default=3
        Degree of the ``poly`` affinity; ignored by the others.
    coef0 : float, default=1
        Zero coefficient of the ``poly`` and ``sigmoid`` affinities; ignored
        by the others.
    kernel_params : dict or None, default=None
        Further keyword arguments of a kernel affinity (a callable's own);
        ``gamma``, ``degree`` and ``coef0`` take precedence for a kernel
        name, as in ``SpectralClustering``.
    learned : {"cluster", "cluster_degree"}, default="cluster"
        ``cluster``: the shared-cluster kernel (k-means, Theorem 13);
        ``cluster_degree``: each neighbour weighted by its degree in ``p``'s
        graph (normalised cuts, Theorem 14).
    n_neighbors : int, default=10
        Neighbours of the ``nearest_neighbors`` and
        ``precomputed_nearest_neighbors`` affinities.
    n_walk_steps : int, default=2
        Neighbour propagation: ``p~ ∝ P + P^2 + ... + P^(1 + n_walk_steps)``.
        Wider neighbourhoods smooth the loss landscape (the user guide
        gives the accuracy of 1 and 2 steps on digits), at a cost per
        iteration that grows with the number of propagated edges.
    propagation : {"sum", "reachable"}, default="sum"
        ``sum`` weighs walks by their probability; ``reachable`` is uniform
        over every point a walk reaches.
    perplexity : float, default=30.0
        Perplexity of the ``gaussian`` supervisory kernel.
    divergence : {"forward", "reverse"}, default="forward"
        ``forward``: I-Con's ``KL(p || q)``. ``reverse``: ``KL(q || p)``
        summed over points with ``p`` a Gaussian of one ``bandwidth`` over
        all points (self included), the c-SNE loss of Theorem 13, which is
        the probabilistic k-means loss over ``2 bandwidth^2`` minus the
        entropies of ``q``: k-means as an I-Con method. Needs
        ``supervisory="gaussian"``, ``learned="cluster"``, no debiasing and
        the Euclidean metric; costs ``O(n_samples^2 n_clusters)`` per step
        (the entropies), in linear memory.
    bandwidth : float or None, default=None
        Bandwidth ``sigma`` of the ``reverse`` divergence's Gaussian. None:
        ``sqrt(0.01 * v)`` with ``v`` the mean squared distance of the
        points to their mean, small enough that the k-means term outweighs
        the entropies.
    alpha : float in [0, 1], default=0.0
        Debiasing of ``p``: ``(1 - alpha) p + alpha / n_samples``. Its
        uniform part touches every pair, so ``alpha > 0`` costs
        ``O(n_samples^2 n_clusters)`` time per iteration (memory stays linear).
    alpha_q : float in [0, 1), default=0.0
        The same debiasing on ``q``, in log space.
    mapper : {"auto", "linear", "mlp", "table"} or callable, default="auto"
        ``auto``: ``table`` when ``X`` is a precomputed matrix (it has no
        features to map); on dense features, ``mlp`` when the fit trains on
        mini-batches (``batch_size``, by default beyond 2000 samples) from
        the mapper's own weights, ``linear`` otherwise. A size rule: a
        linear map of 50 principal components cannot carve MNIST-70k into
        its digits (accuracy 0.70) where the MLP reaches 0.87, while on
        digits (1797 samples) the linear map is the more accurate (the user
        guide gives the figures).
        ``linear`` and ``mlp`` map the standardised input to cluster logits
        and provide :meth:`predict` (a sparse input is divided by its total
        standard deviation, the root of the summed feature variances,
        instead: rare columns are not blown up to unit variance, and the
        bias absorbs the mean); ``table`` learns free logits per
        training point (transductive, no ``predict``). A callable
        ``mapper(n_features, n_clusters)`` returning a
        :class:`torch.nn.Module` brings your own encoder of the
        standardised input (a ``(batch, n_features)`` float tensor) to
        ``n_clusters`` logits; it is initialised under a seed drawn from
        ``random_state`` and trained like ``mlp``. Define it at module level
        so the estimator pickles. It receives dense tensors, so sparse
        features are refused with it (densify them with ``X.toarray()``).
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden ReLU layer widths of the ``mlp`` mapper.
    init : {"auto", "random_weights", "spectral", "random", "k-means++"}, array-like of shape \
(n_clusters, n_features) or callable, default="auto"
        Where each restart starts. ``auto``: ``spectral`` for the ``table``
        mapper (free logits, as a precomputed matrix gets), ``random_weights``
        otherwise. ``random_weights``: the mapper's own random weights (for
        ``table``, random logits smoothed along ``p``'s graph), a start
        committed to no partition; on digits none of the centre starts
        below did better (the user guide gives the figures). ``spectral``
        (``table`` only): the soft assignment of one k-means run in the
        spectral embedding of the affinity graph, computed as
        ``SpectralClustering`` does, which I-Con then refines; free logits
        started at random stay in fragments of the graph (the user guide
        gives the figures). The others take KMeans's meaning:
        ``random`` draws ``n_clusters`` distinct rows as centres,
        ``k-means++`` seeds them as :func:`sklearn.cluster.kmeans_plusplus`
        does, an array gives them (and the fit runs one restart), a
        callable ``init(X, n_clusters, random_state)`` returns them; the
        model then starts at the centres' soft k-means assignment
        ``softmax(-|x - c|^2 / s)``, which is linear in ``x`` up to a
        per-row constant, so a ``linear`` or ``table`` model holds it
        exactly (``s`` is the mean squared distance of the points to their
        nearest centre). Centres need ``mapper="linear"`` or ``"table"``
        and input features (not a precomputed matrix).
    n_init : int or "auto", default="auto"
        Restarts. ``"auto"``, as ``KMeans`` takes it: one run with given
        centres (an array ``init``); otherwise 4 for the exact loss and 8
        with mini-batches (by default beyond 2000 samples), whose restarts
        are not screened: on MNIST-70k's pixels eight lifted the mean
        accuracy over seeds 0-2 from 0.82 to 0.90 (the user guide gives
        the figures). ``k-means++`` gets as many: unlike k-means, a
        k-means++ start did not beat random weights here (user guide), so
        it earns no fewer restarts. With the exact loss each runs 100 steps (fewer if it
        converges first); the two of lowest loss then run on to
        convergence or ``max_iter``, and the lower of those is kept: about
        half the cost of running every restart to the end (the user guide
        gives the accuracy it trades). Mini-batch restarts all run to the
        end and the lowest final loss is kept.
    max_iter : int, default=1000
        Adam steps per restart, at most.
    tol : float, default=3e-4
        A restart has converged when its loss, read every 10 steps, has
        improved by less than ``tol`` times its size since the last reading;
        with mini-batches, when the average over each 50 steps has done so
        three times in a row (one average of noisy estimates can stall
        while the fit still improves). A fit whose
        kept restart reaches ``max_iter`` first warns with a
        :class:`~sklearn.exceptions.ConvergenceWarning`. ``tol=0`` always
        runs ``max_iter`` steps, without the warning.
    copy_x : bool, default=True
        ``KMeans``'s promise that ``X`` is left as it was: the fit never
        writes into ``X``, whatever the value (``KMeans(copy_x=False)``
        also restores ``X`` before it returns).
    batch_size : int, "auto" or None, default="auto"
        None: every step computes the exact loss over all edges of the
        propagated ``p`` (their number grows as ``n_neighbors ** (1 +
        n_walk_steps)`` per point). An int: every step draws that many
        anchors uniformly, one neighbour of each from ``p~`` by a random
        walk on the one-step graph (so ``p``'s powers are never formed), and
        ``alpha``'s uniform neighbours; cluster masses are estimated from
        the anchors. Memory and time per step no longer depend on the
        walks, which makes large data feasible; needs
        ``propagation="sum"`` and ``learned="cluster"``. ``"auto"``: None
        up to 2000 samples or when those do not hold, 4096 beyond (with
        the MLP mapper and the eight restarts ``auto`` then picks,
        MNIST-70k's pixels cluster in about 43 s on two CPU cores; see the
        scaling page).
    learning_rate : float, default=0.05
        Adam's step size.
    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW): every step shrinks the mapper's
        parameters by ``learning_rate * weight_decay``, which keeps the
        cluster logits soft and helps ``predict`` generalise: set it to 1.0
        when new points will be predicted. It costs some training accuracy
        and blunts low-dimensional data, so it is off by default; the user
        guide gives the held-out gaps and accuracies it trades.
    metric : {"euclidean", "sqeuclidean", "cosine", "manhattan", "precomputed"}, default="euclidean"
        Metric of the neighbour search; ``precomputed``: ``X`` is a square
        distance matrix.
    neighbors : {"auto", "exact", "approximate"}, default="auto"
        Neighbour search behind the supervisory kernel. ``approximate`` uses
        pynndescent (its first call in a process compiles numba code, which
        takes tens of seconds); ``auto`` searches exactly on a GPU and while
        ``n_samples**2 * n_features <= 2.5e11`` (up to about MNIST-70k in 50
        dimensions, where an exact search on a CPU is still faster than a
        compiled pynndescent), approximately beyond.
    pca_components : "auto", int or None, default="auto"
        Principal components the fit works in: the neighbour search behind
        ``p`` and the mapper see the centred data projected onto them (a
        PCA-then-cluster pipeline; :meth:`predict` projects new points the
        same way), while ``cluster_centers_``, ``inertia_``, ``transform``
        and ``score`` stay in ``X``'s own space. ``auto``: the first 50 when
        dense ``X`` has more than 100 features, the affinity is
        ``nearest_neighbors`` or ``gaussian`` with a Euclidean metric, the
        fit starts from the mapper's weights (``init`` centres live in
        ``X``'s space) and the mapper is not a callable; ``X`` itself
        otherwise. On MNIST-70k's 784 pixels the defaults reach an accuracy
        of 0.87 in 50 components against 0.67 in the pixels (benchmarks/RESULTS.md).
        An int at most ``min(n_samples, n_features)`` sets the number where
        those conditions hold; None always uses ``X`` itself.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to optimise; fitted state is kept on the CPU.
    n_jobs : int or None, default=None
        CPU threads of the fit (the neighbour search, a kernel affinity and
        the optimisation), joblib's meaning: None leaves torch's setting,
        -1 is every core.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisations; same seed, same device, same labels.
    verbose : int, default=0
        Print the loss at every convergence check of every restart when positive.
    supervisory : {"knn", "gaussian", "precomputed"}, default="deprecated"
        Former name of ``affinity`` (``"knn"`` is ``"nearest_neighbors"``).

        .. deprecated:: 0.2
            Use ``affinity``; ``supervisory`` will be removed in 0.4.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training point, consecutive integers from 0.
    cluster_centers_ : ndarray of shape (n_labels, n_features)
        Mean of each cluster's members in input space (``n_labels`` is the
        number of non-empty clusters). Only when the fit saw features: a
        precomputed matrix has no space to place centres in.
    affinity_matrix_ : ndarray or sparse matrix of shape (n_samples, n_samples)
        The affinity ``p`` was normalised from, as
        ``SpectralClustering.affinity_matrix_``: ``X`` itself when
        precomputed, ``0.5 (A + A^T)`` of the k-NN connectivity ``A`` (sparse
        CSR), the kernel matrix, or for ``gaussian`` the calibrated
        conditional ``p`` (sparse CSR). Absent for
        ``divergence="reverse"``, whose Gaussian over all pairs is never
        formed.
    inertia_ : float
        Sum of squared distances of the training points to the centre of
        their cluster, as ``KMeans.inertia_`` (only when the fit saw
        features).
    loss_ : float
        Final loss of the kept restart. With ``batch_size``, the
        cross-entropy ``-E log q~(j|i)`` estimated on one fixed sample of
        pairs (the KL plus the entropy of ``p~``, which no restart changes).
    loss_curve_ : ndarray
        Its loss at every convergence check (every 10 steps, or 50 with
        mini-batches), then the final loss.
    n_iter_ : int
        Adam steps the kept restart took.
    mapper_ : torch.nn.Module or None
        Trained mapper on the CPU in float64 (None for ``table``).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.cluster.KMeans : Round clusters, predicts new points.
    sklearn.cluster.SpectralClustering : Graph clusters, no ``predict``.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn_icon import IConClustering
    >>> X, _ = make_blobs(n_samples=200, centers=3, random_state=0)
    >>> model = IConClustering(n_clusters=3, n_init=1, max_iter=100, random_state=0).fit(X)
    >>> sorted(set(model.labels_.tolist()))
    [0, 1, 2]
    >>> model.predict(X[:5]).shape
    (5,)
    """

    _parameter_constraints: dict = {
        **_BaseNeighborICon._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "pca_components": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "affinity": [StrOptions(set(_GRAPH_AFFINITIES) | set(PAIRWISE_KERNEL_FUNCTIONS)), callable],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "degree": [Interval(Real, 0, None, closed="left")],
        "coef0": [Real],
        "kernel_params": [dict, None],
        "n_jobs": [Integral, None],
        "supervisory": [StrOptions({"knn", "gaussian", "precomputed", "deprecated"})],
        "learned": [StrOptions(set(CLUSTER_KERNELS))],
        "n_walk_steps": [Interval(Integral, 0, None, closed="left")],
        "propagation": [StrOptions({"sum", "reachable"})],
        "divergence": [StrOptions({"forward", "reverse"})],
        "mapper": [StrOptions(set(_CLUSTER_MAPPERS)), callable],
        "init": [StrOptions({"auto", "random_weights", "spectral", "random", "k-means++"}), "array-like", callable],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "copy_x": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        affinity="nearest_neighbors",
        gamma=1.0,
        degree=3,
        coef0=1,
        kernel_params=None,
        learned="cluster",
        n_neighbors=10,
        n_walk_steps=2,
        propagation="sum",
        perplexity=30.0,
        divergence="forward",
        bandwidth=None,
        alpha=0.0,
        alpha_q=0.0,
        mapper="auto",
        hidden_layer_sizes=(100,),
        init="auto",
        n_init="auto",
        max_iter=1000,
        tol=3e-4,
        copy_x=True,
        batch_size="auto",
        learning_rate=0.05,
        weight_decay=0.0,
        metric="euclidean",
        neighbors="auto",
        pca_components="auto",
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
        supervisory="deprecated",
    ):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params
        self.supervisory = supervisory
        self.learned = learned
        self.n_neighbors = n_neighbors
        self.n_walk_steps = n_walk_steps
        self.propagation = propagation
        self.perplexity = perplexity
        self.divergence = divergence
        self.bandwidth = bandwidth
        self.alpha = alpha
        self.alpha_q = alpha_q
        self.mapper = mapper
        self.hidden_layer_sizes = hidden_layer_sizes
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.copy_x = copy_x
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.metric = metric
        self.neighbors = neighbors
        self.pca_components = pca_components
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self._precomputed_input
        tags.input_tags.sparse = self._precomputed_input or self._sparse_features_obstacle() is None
        # An affinity is non-negative (scikit-learn's checks then build theirs from non-negative data).
        tags.input_tags.positive_only = self._affinity_choice() in _MATRIX_AFFINITIES
        return tags

    def _affinity_choice(self):
        """The affinity in effect: ``affinity``, or what the deprecated ``supervisory`` names."""
        return _SUPERVISORY_TO_AFFINITY.get(self.supervisory, self.affinity)

    @property
    def _precomputed_input(self):
        """Whether ``X`` is a square matrix (distances or affinities) instead of features."""
        return self.metric == "precomputed" or self._affinity_choice() in _MATRIX_AFFINITIES

    def _sparse_features_obstacle(self):
        """Why sparse features cannot be fitted as they are (None if they can): the part that needs them dense."""
        mapper = self._mapper_choice()
        if callable(mapper):
            return "a callable mapper receives dense tensors"
        if self.divergence == "reverse":
            return "divergence='reverse' (c-SNE) computes its Gaussian entropies on dense features"
        return None

    def _mapper_choice(self, X=None):
        """The mapper in effect for ``X``: ``auto`` resolved as the ``mapper`` parameter says.

        Without ``X`` (checks that only ask whether the mapper is ``table``)
        ``auto`` on features reads as ``linear``.
        """
        if isinstance(self.mapper, str) and self.mapper == "auto":
            if self._precomputed_input:
                return "table"
            large = X is not None and not sp.issparse(X) and self._batch_size(X.shape[0]) is not None
            return "mlp" if large and self._starts_from_weights() else "linear"
        return self.mapper

    def _is_kernel_affinity(self):
        affinity = self._affinity_choice()
        return callable(affinity) or affinity in PAIRWISE_KERNEL_FUNCTIONS

    def _check_matrix_input(self, X):
        """A precomputed ``X`` must be square and non-negative, and the mapper one that needs no features."""
        check_neighbor_search(self.neighbors, self.metric)
        if not self._precomputed_input:
            return
        affinity = self._affinity_choice()
        if affinity in _MATRIX_AFFINITIES:
            what = "affinity" if affinity == "precomputed" else "distance"
            setting = f"affinity={affinity!r}"
        else:
            what, setting = "distance", "metric='precomputed'"
        check_precomputed(X, self._mapper_choice(), what, setting=setting)

    def _check_affinity_settings(self):
        """Refuse a ``metric`` the affinity does not measure distances in, or one that clashes with it."""
        affinity = self._affinity_choice()
        if self._is_kernel_affinity() and self.metric != "euclidean":
            raise ValueError(
                f"metric={self.metric!r} sets the neighbour search of affinity='nearest_neighbors' or 'gaussian'; "
                f"affinity={_name(affinity)} is a kernel of the features and searches no neighbours. Leave metric "
                "at 'euclidean', or choose the kernel by affinity."
            )
        if affinity == "precomputed_nearest_neighbors" and self.metric not in ("euclidean", "precomputed"):
            raise ValueError(
                f"affinity='precomputed_nearest_neighbors' reads X as distances already; metric={self.metric!r} "
                "cannot apply. Leave metric at 'euclidean'."
            )
        if affinity == "precomputed" and self.metric == "precomputed":
            raise ValueError(
                "affinity='precomputed' reads X as affinities and metric='precomputed' as distances; choose "
                "one (affinity='precomputed_nearest_neighbors' for distances)."
            )

    def _validate_fit_input(self, X):
        # A sparse matrix is accepted where it stays sparse: a precomputed
        # graph, or features that the neighbour search, the kernels and the
        # linear and MLP mappers read as they are.
        obstacle = None if self._precomputed_input else self._sparse_features_obstacle()
        if obstacle is not None and sp.issparse(X):
            raise TypeError(
                f"Sparse data was passed for X, but {obstacle}: use X.toarray() to pass a dense array, or the "
                "default mapper and divergence, which take sparse features."
            )
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc", "coo"] if self._precomputed_input else "csr",
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
        )
        n = X.shape[0]
        self._check_affinity_settings()
        self._check_matrix_input(X)
        if self.n_clusters > n:
            raise ValueError(f"n_clusters={self.n_clusters} must be at most n_samples={n}.")
        affinity = self._affinity_choice()
        searches_neighbors = affinity in ("nearest_neighbors", "precomputed_nearest_neighbors")
        self._check_neighborhoods(
            n,
            n_neighbors=self.n_neighbors if searches_neighbors else None,
            perplexity=self.perplexity if affinity == "gaussian" and self.divergence == "forward" else None,
        )
        if self.divergence == "reverse":
            obstacles = self._reverse_obstacles()
            if obstacles:
                raise ValueError("divergence='reverse' (c-SNE, Theorem 13) needs " + ", ".join(obstacles) + ".")
        elif self.bandwidth is not None:
            raise ValueError(
                "bandwidth is used by divergence='reverse' only: a fixed-bandwidth Gaussian p is dense over "
                "all pairs, and the forward loss needs a sparse p (use perplexity)."
            )
        if self.batch_size not in (None, "auto"):
            if self.propagation != "sum":
                raise ValueError(
                    "batch_size needs propagation='sum': walks sample its neighbours, but the uniform "
                    "distribution over reachable points has no such sampler; use batch_size=None."
                )
            if self.learned != "cluster":
                raise ValueError(
                    f"batch_size needs learned='cluster'; learned={self.learned!r} weights neighbours by the "
                    "degrees of the propagated graph, which mini-batches never form. Use batch_size=None."
                )
        return X

    def _init_choice(self):
        """The start in effect: ``auto`` is ``spectral`` for free logits on a graph, ``random_weights`` otherwise."""
        if isinstance(self.init, str) and self.init == "auto":
            spectral = self._mapper_choice() == "table" and self.divergence == "forward"
            return "spectral" if spectral else "random_weights"
        return self.init

    def _check_init(self, X):
        """Validate ``init`` against the data and the mapper; return explicit centres or None."""
        if self._starts_from_weights():
            return None
        if self._starts_spectrally():
            if self._mapper_choice() != "table" or self.divergence != "forward":
                raise ValueError(
                    "init='spectral' starts free cluster logits from the spectral embedding of p's graph: it needs "
                    f"mapper='table' and divergence='forward' (got mapper={self._mapper_name()}, "
                    f"divergence={self.divergence!r})."
                )
            return None
        if self._precomputed_input:
            raise ValueError(
                f"init={self._init_name()} needs input features to place centres in; a precomputed matrix has "
                "none. Use init='auto' (a spectral start) or 'random_weights'."
            )
        if self._mapper_choice() not in ("linear", "table"):
            raise ValueError(
                f"init={self._init_name()} starts the clustering at the soft k-means assignment of its centres, "
                f"which is exact for mapper='linear' or 'table' only; mapper={self._mapper_name()} starts "
                "from its random weights (init='random_weights')."
            )
        if callable(self.init) or isinstance(self.init, str):
            return None
        centres = np.asarray(self.init, dtype=np.float64)
        self._check_centres(centres, X.shape[1])
        return centres

    def _check_centres(self, centres, n_features):
        expected = (self.n_clusters, n_features)
        if centres.shape != expected:
            raise ValueError(
                f"The shape of the initial centres {centres.shape} does not match (n_clusters, n_features) = "
                f"{expected}."
            )
        if not np.all(np.isfinite(centres)):
            raise ValueError("The initial centres contain NaN or infinity.")

    def _starts_from_weights(self):
        init = self._init_choice()
        return isinstance(init, str) and init == "random_weights"

    def _starts_spectrally(self):
        init = self._init_choice()
        return isinstance(init, str) and init == "spectral"

    def _init_name(self):
        return repr(self.init) if isinstance(self.init, str) else ("a callable" if callable(self.init) else "an array")

    def _mapper_name(self):
        return _name(self._mapper_choice())

    def _centres(self, space, random_state, explicit, weight=None):
        """The start centres of one restart, in input space (weighted as KMeans weighs them); ``space`` may be sparse."""
        if explicit is not None:
            return explicit
        if self._starts_spectrally():
            # One k-means run in the spectral embedding: SpectralClustering's labels, softened.
            kmeans = KMeans(self.n_clusters, n_init=1, random_state=random_state)
            return kmeans.fit(space, sample_weight=weight).cluster_centers_
        if isinstance(self.init, str) and self.init == "random":
            chance = None if weight is None else weight / weight.sum()
            chosen = space[random_state.choice(space.shape[0], self.n_clusters, replace=False, p=chance)]
            return chosen.toarray() if sp.issparse(chosen) else chosen
        if isinstance(self.init, str):
            return kmeans_plusplus(space, self.n_clusters, sample_weight=weight, random_state=random_state)[0]
        centres = np.asarray(self.init(space, self.n_clusters, random_state=random_state), dtype=np.float64)
        self._check_centres(centres, space.shape[1])
        return centres

    def _unmet(self, **wanted):
        """``"name=value (got ...)"`` for each wanted parameter value this estimator does not have."""
        current = {**self.get_params(), "affinity": self._affinity_choice()}
        return [f"{name}={value!r} (got {_name(current[name])})" for name, value in wanted.items() if current[name] != value]

    def _reverse_obstacles(self):
        """What keeps ``divergence="reverse"`` from computing this configuration (empty if nothing)."""
        obstacles = self._unmet(affinity="gaussian", learned="cluster", alpha=0.0, alpha_q=0.0, metric="euclidean")
        if self.batch_size not in (None, "auto"):
            obstacles.append(f"batch_size=None (got {self.batch_size!r}; the entropies need every pair)")
        return obstacles

    def _batch_size(self, n_samples):
        """Anchors per step, or None for the exact full-batch loss."""
        if self.divergence == "reverse":
            return None
        if self.batch_size != "auto":
            return self.batch_size
        samplable = self.propagation == "sum" and self.learned == "cluster"
        return AUTO_BATCH_SIZE if samplable and n_samples > FULL_BATCH_MAX_SAMPLES else None

    def _supervisory(self, X, device, walks=True, weight=None):
        """Row-stochastic sparse ``p`` (float64), the log degrees of its graph, and ``affinity_matrix_``.

        ``walks=False`` returns the one-step ``p``, before propagation;
        ``weight`` (sample weights) weighs each neighbour as its copies.
        """
        affinity = self._affinity_choice()
        if affinity == "gaussian":
            P = supervisory_distribution(
                to_torch(X, device),
                kernel="gaussian",
                normalization="conditional",
                metric=self.metric,
                perplexity=self.perplexity,
                neighbors=self.neighbors,
                random_state=self.random_state,
            )
            shown = to_scipy_csr(P)
        else:
            A, shown = self._affinity_graph(X, affinity, device)
            P = normalize_rows(A)
        if weight is not None:
            P = weight_neighbors(P, torch.as_tensor(weight, device=P.device))
        if walks:
            # A dense kernel's powers are dense: dense products, then its nonzeros.
            P = propagate(P, self.n_walk_steps, self.propagation)
        P = (P if P.is_sparse else P.to_sparse()).coalesce()
        return P, log_degrees(P), shown

    def _affinity_graph(self, X, affinity, device):
        """The affinity matrix as a torch tensor (sparse for graphs, dense for kernels), and as ``affinity_matrix_``."""
        if affinity == "precomputed":
            return to_torch(X, device), X
        if affinity in ("nearest_neighbors", "precomputed_nearest_neighbors"):
            metric = "precomputed" if affinity == "precomputed_nearest_neighbors" else self.metric
            neighbors = "exact" if metric == "precomputed" else self.neighbors
            A = knn_graph(to_torch(X, device), self.n_neighbors, metric, neighbors, random_state=self.random_state)
            return A, 0.5 * to_scipy_csr(A)
        n = X.shape[0]
        check_memory(
            8 * n * n,
            torch.device("cpu"),
            f"The {n} x {n} kernel matrix of affinity={_name(affinity)}",
            "Use affinity='nearest_neighbors', whose graph is sparse.",
        )
        params = dict(self.kernel_params or {})
        if not callable(affinity):
            params.update(gamma=self.gamma, degree=self.degree, coef0=self.coef0)
        K = pairwise_kernels(X, metric=affinity, filter_params=True, n_jobs=self.n_jobs, **params)
        if has_negative_entry(K):
            raise ValueError(
                f"affinity={_name(affinity)} gave negative affinities (minimum {K.min():.3g}); p is a distribution "
                "and needs non-negative ones. Choose a non-negative kernel (rbf, laplacian, chi2, ...)."
            )
        return torch.as_tensor(K, dtype=torch.float64, device=device), K

    def _make_model(self, mapper, n, n_features, generator, dtype, P, centres=None, space=None, standardizer=None):
        if centres is not None:
            squared = squared_distances(space, centres)
            temperature = soft_kmeans_temperature(squared)
            if mapper == "table":
                return FreeLogits(torch.as_tensor(-squared / temperature, dtype=dtype))
            model = self._make_model(mapper, n, n_features, generator, dtype, P)
            weight, bias = soft_kmeans_linear(centres, *standardizer, temperature)
            with torch.no_grad():
                model.weight.copy_(torch.as_tensor(weight))
                model.bias.copy_(torch.as_tensor(bias))
            return model
        if mapper == "table" and P is None:
            return FreeLogits(torch.randn((n, self.n_clusters), generator=generator, dtype=dtype))
        if mapper == "table":
            return FreeLogits(smoothed_logits(P, self.n_clusters, generator, dtype))
        if callable(mapper):
            return build_user_module(mapper, n_features, self.n_clusters, generator).to(dtype)
        return make_mapper(
            mapper,
            n_features=n_features,
            n_components=self.n_clusters,
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            generator=generator,
            dtype=dtype,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    @keep_state_on_failure
    def fit(self, X, y=None, sample_weight=None):
        """Cluster ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or (n_samples, n_samples)
            Training data, dense or sparse (kept sparse; not with
            ``divergence="reverse"`` or a callable mapper); a square affinity matrix (dense or sparse) when
            ``affinity="precomputed"``, a distance matrix when
            ``affinity="precomputed_nearest_neighbors"`` or
            ``metric="precomputed"``.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of two counts a point as its
            repeated row would: twice in the cluster masses, twice as often
            as a neighbour in ``p``, and its divergence twice in the loss
            (also in the standardisation, the centre starts,
            ``cluster_centers_`` and ``inertia_``). Weight zero removes a
            point from the loss; it still gets a label. Needs ``alpha=0``,
            ``alpha_q=0`` and ``divergence="forward"``.

        Returns
        -------
        self : IConClustering
            The fitted estimator.
        """
        if self.supervisory != "deprecated":
            warnings.warn(
                f"supervisory was renamed affinity in 0.2 and will be removed in 0.4; use "
                f"affinity={_SUPERVISORY_TO_AFFINITY[self.supervisory]!r}.",
                FutureWarning,
                stacklevel=4,
            )
            if self.affinity != "nearest_neighbors":
                raise ValueError("Set affinity only; supervisory is its deprecated name and both were given.")
        with torch_threads(self.n_jobs):
            return self._fit(X, sample_weight)

    def _sample_weight(self, sample_weight, X):
        """The validated weights as given and scaled to mean one (the loss's), or None twice."""
        if sample_weight is None:
            return None, None
        obstacles = self._unmet(alpha=0.0, alpha_q=0.0, divergence="forward")
        if obstacles:
            raise ValueError(
                "sample_weight needs " + ", ".join(obstacles) + ": the uniform parts of debiasing and the c-SNE "
                "entropies have no weighted form here."
            )
        # scikit-learn's check also refuses weights that are all zero.
        weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        return weight, weight * (weight.size / weight.sum())

    def _fit(self, X, sample_weight=None):
        X = self._validate_fit_input(X)
        given_weight, weight = self._sample_weight(sample_weight, X)
        explicit_centres = self._check_init(X)
        n = X.shape[0]
        device = resolve_device(self.device)
        dtype = torch.float32
        generator = make_generator(self.random_state)
        batch_size = self._batch_size(n)
        batched = batch_size is not None
        mapper = self._mapper_choice(X)
        # A precomputed matrix is no feature space: it stays as given (sparse stays sparse);
        # sparse features stay sparse too.
        if self._precomputed_input:
            features = None
        elif sp.issparse(X):
            features = sp.csr_matrix(X, dtype=np.float64)
        else:
            features = np.asarray(X, dtype=np.float64)
        projection = principal_projection(
            X, self.pca_components, self._projection_obstacle(X), verbose=self.verbose,
            prefix=type(self).__name__, purpose="Clustering",
        )
        if projection is not None:
            projection = tuple(part.numpy() for part in projection)
        model_features = _projected(features, projection)
        reverse = self.divergence == "reverse"
        if reverse:
            P = log_degree = affinity_matrix = None
            scaled, spread = unit_spread(features)
            data = torch.as_tensor(scaled, dtype=dtype, device=device)
            bandwidth = 0.1 if self.bandwidth is None else self.bandwidth / spread
            log_normalizers = gaussian_log_normalizers(data, bandwidth)
        else:
            P, log_degree, affinity_matrix = self._supervisory(
                X if model_features is features else model_features, device, walks=not batched, weight=weight
            )
            P, log_degree = P.to(dtype), (log_degree.to(dtype) if self.learned == "cluster_degree" else None)
            if weight is not None and not batched:
                # A point of weight w holds w copies' share of every cluster's mass. (A floor keeps
                # weight zero finite in log space: e^-69 of a mass is none.)
                log_weight = torch.as_tensor(np.log(np.maximum(weight, 1e-30)), dtype=dtype, device=device)
                log_degree = log_weight if log_degree is None else log_degree + log_weight

        standardizer = None
        if mapper == "table":
            inputs = None
        else:
            standardizer = fit_standardizer(model_features, sample_weight=weight)
            inputs = standardized_tensor(model_features, standardizer, dtype, device)

        if batched:
            objective = SampledClusterObjective(
                WalkSampler(P.cpu(), self.n_walk_steps), inputs, batch_size, generator,
                alpha=self.alpha, alpha_q=self.alpha_q, n_evaluation=_EVALUATION_PAIRS, device=device,
                sample_weight=None if weight is None else torch.as_tensor(weight),
            )
        elif reverse:
            objective = ExactClusterObjective(
                lambda log_phi: csne_loss(data, log_phi, bandwidth, log_normalizers=log_normalizers) / n, inputs
            )
        else:
            objective = ExactClusterObjective(
                prepared_cluster_loss(
                    P, alpha=self.alpha, alpha_q=self.alpha_q, log_degree=log_degree,
                    row_weight=None if weight is None else torch.as_tensor(weight, dtype=dtype, device=device),
                ),
                inputs,
            )

        n_init = self._n_init(explicit_centres, batched)
        if explicit_centres is not None and n_init != 1:
            warnings.warn(
                f"Explicit initial centres passed: performing only one init in {type(self).__name__} instead of "
                f"n_init={n_init}.",
                RuntimeWarning,
                stacklevel=5,
            )
            n_init = 1
        use_centres = not self._starts_from_weights()
        centre_state = None
        if use_centres:
            centre_state = np.random.RandomState(int(torch.randint(np.iinfo(np.int32).max, (1,), generator=generator)))
        start_space = features
        if self._starts_spectrally():
            start_space = spectral_coordinates(affinity_matrix, self.n_clusters, centre_state)
        # Mini-batch restarts are not screened: on MNIST-70k with mapper="mlp" the restart ahead
        # after 100 noisy steps was not the one that ended best (user guide).
        screen = self.max_iter if objective.noisy else min(self.max_iter, SCREEN_STEPS)

        n_inputs = X.shape[1] if model_features is None else model_features.shape[1]

        def make_model(restart):
            centres = self._centres(start_space, centre_state, explicit_centres, weight) if use_centres else None
            return self._make_model(
                mapper, n, n_inputs, generator, dtype, P, centres=centres, space=start_space, standardizer=standardizer
            ).to(device)

        result, model = train_restarts(
            make_model, objective, n_init=n_init, max_iter=self.max_iter, screen=screen, keep=SCREEN_KEEP,
            prefix="IConClustering", learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            tol=self.tol, verbose=self.verbose,
        )
        if not result.converged and self.tol > 0:
            warnings.warn(
                f"IConClustering stopped at max_iter={self.max_iter} before the loss converged (tol={self.tol}); "
                "increase max_iter, or raise tol.",
                ConvergenceWarning,
                stacklevel=5,
            )

        model = model.cpu().to(torch.float64).eval()
        # Attributes that only some configurations have must not survive from an earlier fit.
        for attribute in ("affinity_matrix_", "cluster_centers_", "inertia_"):
            self.__dict__.pop(attribute, None)
        if affinity_matrix is not None:
            self.affinity_matrix_ = affinity_matrix
        self._standardizer = standardizer
        self._feature_pca = projection
        self.mapper_ = None if mapper == "table" else model
        if mapper == "table":
            with torch.no_grad():
                logits = model().numpy()
        else:
            logits = self._logits(features)
        raw = logits.argmax(axis=1)
        # Keep only clusters some training point fell in, numbered in order.
        self._kept_clusters = np.unique(raw)
        self.labels_ = np.searchsorted(self._kept_clusters, raw)
        self.loss_ = result.losses[-1]
        self.loss_curve_ = np.asarray(result.losses)
        self.n_iter_ = result.n_iter
        self._n_features_out = self._kept_clusters.size
        if self._kept_clusters.size < self.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({self._kept_clusters.size}) found smaller than "
                f"n_clusters ({self.n_clusters}): the other clusters received no point.",
                ConvergenceWarning,
                stacklevel=5,
            )
        if features is not None:
            self.cluster_centers_ = np.stack(
                [_weighted_mean(features, weight, self.labels_ == k) for k in range(self._kept_clusters.size)]
            )
            self.inertia_ = _weighted_inertia(features, self.cluster_centers_, self.labels_, given_weight)
        return self

    def _n_init(self, explicit_centres, batched):
        """Restarts to run: ``n_init``, or for ``"auto"`` one with given centres, and otherwise
        :data:`DEFAULT_N_INIT` for a full-batch fit and :data:`MINIBATCH_N_INIT` for a mini-batch one."""
        if self.n_init != "auto":
            return self.n_init
        if explicit_centres is not None:
            return 1
        return MINIBATCH_N_INIT if batched else DEFAULT_N_INIT

    def _projection_obstacle(self, X):
        """Why the fit cannot work in principal components of ``X`` (None if it can)."""
        if self._precomputed_input:
            return "X is a precomputed matrix here"
        if sp.issparse(X):
            return "sparse X would be densified"
        if self._affinity_choice() not in ("nearest_neighbors", "gaussian") or self.divergence == "reverse":
            return "the affinity is computed on X's own features"
        if not (isinstance(self.metric, str) and self.metric in ("euclidean", "sqeuclidean")):
            return "the metric is not Euclidean"
        if not self._starts_from_weights() and not self._starts_spectrally():
            return "init centres live in X's space"
        if callable(self.mapper):
            return "a callable mapper is built for X's features"
        return None

    def _logits(self, X):
        # A model from before pca_components has no fitted projection: it maps X itself.
        projected = _projected(X, getattr(self, "_feature_pca", None))
        return apply_mapper(self.mapper_, self._standardizer, projected)

    def _kept_logits(self, X):
        check_is_fitted(self, "labels_")
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32], reset=False)
        return self._logits(X)[:, self._kept_clusters]

    def predict(self, X):
        """Assign new points to the learned clusters.

        Available with a parametric mapper (not ``table``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels in the numbering of ``labels_``.
        """
        return self._kept_logits(X).argmax(axis=1)

    def predict_proba(self, X):
        """Soft assignments of new points to the learned clusters.

        Available with a parametric mapper (not ``table``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data.

        Returns
        -------
        ndarray of shape (n_samples, n_labels)
            Rows sum to one; columns follow the numbering of ``labels_``.
        """
        logits = self._kept_logits(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def transform(self, X):
        """Distances of points to the cluster centres, as ``KMeans.transform``.

        Available when the fit saw features (not a precomputed matrix).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Points.

        Returns
        -------
        ndarray of shape (n_samples, n_labels)
            Euclidean distance of each point to each of ``cluster_centers_``.
        """
        check_is_fitted(self, "labels_")
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32], reset=False)
        return euclidean_distances(X.astype(np.float64), self.cluster_centers_)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, then return the distances of the training points to the centres.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            As in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_labels)
        """
        return self.fit(X, y, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Minus the sum of squared distances of points to the centre of their predicted cluster, as ``KMeans.score``.

        On the training data it is ``-inertia_``. Available with a
        parametric mapper (which predicts).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Points.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the squared distances.

        Returns
        -------
        float
        """
        labels = self.predict(X)
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32], reset=False)
        weight = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        return -_weighted_inertia(X, self.cluster_centers_, labels, weight)




IConClustering.predict = available_if(_is_inductive)(IConClustering.predict)
IConClustering.score = available_if(_is_inductive)(IConClustering.score)
IConClustering.predict_proba = available_if(_is_inductive)(IConClustering.predict_proba)
IConClustering.transform = available_if(_has_features)(IConClustering.transform)
IConClustering.fit_transform = available_if(_has_features)(IConClustering.fit_transform)


#: The k-means instance of I-Con (Theorem 13): the parameters of ``make_method("kmeans")``.
KMEANS_PRESET = MappingProxyType(dict(affinity="gaussian", divergence="reverse"))


class SpectralIConClustering(ClusterMixin, BaseEstimator):
    """Spectral clustering as I-Con: the k-means instance on a spectral embedding (Corollary 4).

    The embedding is the one scikit-learn's
    ``SpectralClustering(affinity="nearest_neighbors")`` clusters: the
    leading eigenvectors of the normalised Laplacian of the symmetrised
    k-NN graph, less the constant one (which moves no point relative to
    another). The clustering is ``make_method("kmeans")`` (:data:`KMEANS_PRESET`), the c-SNE loss of
    Theorem 13, on that embedding. Like ``SpectralClustering`` it is
    transductive: there is no ``predict``.

    Parameters
    ----------
    n_clusters : int, default=8
    n_neighbors : int, default=10
        Neighbours of the k-NN affinity graph; must be less than
        ``n_samples``.
    clustering_params : dict or None, default=None
        Further parameters of the :class:`~sklearn_icon.IConClustering`
        that clusters the embedding (the k-means preset's own by default).
    random_state : int or None, default=None
        Seeds the eigensolver and the clustering.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    embedding_ : ndarray of shape (n_samples, max(n_clusters - 1, 1))
        The spectral embedding that was clustered.
    clustering_ : IConClustering
        The fitted clustering of ``embedding_``.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn_icon import SpectralIConClustering
    >>> X, _ = make_blobs(90, centers=3, random_state=0)
    >>> SpectralIConClustering(3, random_state=0).fit(X).labels_.shape
    (90,)
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "clustering_params": [dict, None],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters=8, *, n_neighbors=10, clustering_params=None, random_state=None):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.clustering_params = clustering_params
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Embed ``X`` spectrally and cluster the embedding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : SpectralIConClustering
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        check_neighborhood_sizes(X.shape[0], n_neighbors=self.n_neighbors)
        if self.n_clusters > X.shape[0]:
            raise ValueError(f"n_clusters={self.n_clusters} must be at most n_samples={X.shape[0]}.")
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        embedding = SpectralEmbedding(
            # One axis at least: a single cluster needs no direction, but the solver needs one.
            n_components=max(self.n_clusters - 1, 1), affinity="nearest_neighbors", n_neighbors=self.n_neighbors,
            random_state=seed,
        )
        self.embedding_ = embedding.fit_transform(X)
        params = {**KMEANS_PRESET, "random_state": seed, **(self.clustering_params or {})}
        self.clustering_ = IConClustering(self.n_clusters, **params).fit(self.embedding_)
        self.labels_ = self.clustering_.labels_
        return self

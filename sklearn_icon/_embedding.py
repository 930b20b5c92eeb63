"""IConEmbedding: a drop-in for ``sklearn.manifold.TSNE`` built on the I-Con loss."""

import math
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.neighbors import VALID_METRICS
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._backend.affinities import SUPERVISORY_KERNELS, placement_distribution, supervisory_distribution
from ._backend.affinities.graphs import WalkSampler
from ._backend.distributed import ProcessGroupShard
from ._backend.initialization import (
    padded_principal_axes,
    pca_table,
    random_table,
    table_learning_rates,
)
from ._backend.kernels.distance import DISTANCE_KERNELS, LEARNED_KERNELS, NORMALIZATIONS
from ._backend.mappers import MAPPERS, build_user_module, finalize_mapper, make_mapper
from ._backend.objectives.autograd import AutogradObjective
from ._backend.objectives.exact import DistanceKernelObjective, exact_buffers
from ._backend.objectives.fft import MAX_DIMENSIONS, InterpolatedStudentTObjective
from ._backend.objectives.placement import placement_objective
from ._backend.objectives.sampled import SampledNeighborLoss
from ._backend.training import (
    standardized_augmentation,
    train_mapper,
    train_placement,
    train_sampled,
    train_table,
)
from ._base import (
    _BaseNeighborICon,
    apply_mapper,
    check_memory,
    encode_shared_labels,
    fit_standardizer,
    has_negative_entry,
    keep_state_on_failure,
    make_generator,
    principal_projection,
    resolve_device,
    to_torch,
    torch_threads,
)

#: Fewest samples for which ``method="auto"`` interpolates the repulsion,
#: where openTSNE leaves Barnes-Hut for it: below it the interpolation is
#: faster but reaches a higher KL than the exact loss (benchmarks/RESULTS.md,
#: "Measurements behind the defaults").
FFT_MIN_SAMPLES = 10000

LOSS_METHODS = ("auto", "exact", "fft", "barnes_hut")

#: Metrics ``metric`` accepts, as ``TSNE``: every name of
#: :func:`sklearn.metrics.pairwise_distances`, and "precomputed".
EMBEDDING_METRICS = frozenset(VALID_METRICS["brute"]) | {"precomputed"}


def barnes_hut_grid(angle):
    """The interpolation grid that ``method="barnes_hut"`` runs at a Barnes-Hut ``angle`` in (0, 1].

    Barnes-Hut summarises a cell when its width is below ``angle`` times
    its distance; the interpolation's error is set likewise by its box
    width against the kernel's length scale (one unit for the Cauchy
    kernel). Boxes of width ``2 angle`` and at least ``50 / angle`` of them
    per side make the default ``angle=0.5`` twice as fine as openTSNE's
    smallest grid, which on small data sets (where the embedding spans
    fewer than 100 units) is what brings its KL to that of the exact loss
    (benchmarks/RESULTS.md); a smaller angle is finer, and slower.
    """
    return dict(ints_in_interval=2.0 * angle, min_num_intervals=int(math.ceil(50.0 / angle)))


#: ``max_iter=None``: t-SNE's iterations for ``table`` at openTSNE's budget
#: (its larger step after exaggeration reaches there the KL scikit-learn's
#: 1000 reach); Adam steps for parametric mappers and mini-batches, which
#: still gain from the last 250 (benchmarks/RESULTS.md).
TABLE_MAX_ITER = 750
ADAM_MAX_ITER = 1000


#: openTSNE's ``transform``: new points start at the median embedding of
#: this many nearest reference points.
PLACEMENT_NEAREST = 25

#: Iterations of the placement of new points (openTSNE's 250, at one momentum).
PLACEMENT_ITER = 250
PLACEMENT_LEARNING_RATE = 0.05
PLACEMENT_EXAGGERATION = 1.5


class IConEmbedding(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _BaseNeighborICon):
    """Neighbour embedding by the I-Con loss; with the defaults, t-SNE.

    Minimises the KL divergence between a supervisory neighbour distribution
    ``p`` on the input and a learned one ``q`` on the embedding (Alshammari
    et al., ICLR 2025). The defaults reproduce t-SNE as scikit-learn's
    :class:`~sklearn.manifold.TSNE` runs it: perplexity-calibrated Gaussian
    ``p`` symmetrised into a joint distribution, Cauchy ``q``, PCA
    initialisation, early exaggeration, momentum and gains. Every other
    ingredient is a parameter: the kernels, debiasing ``alpha``, the
    normalisation, and a parametric mapper (``"linear"`` or ``"mlp"``).
    :meth:`transform` embeds unseen points: through the parametric mapper,
    or, for t-SNE's free table, by openTSNE's placement of new points into
    the fitted embedding.

    With ``method="exact"`` the loss is computed over all pairs, so memory
    grows as ``n_samples ** 2`` (a fit that would not fit in memory is
    refused before it starts); ``method="fft"`` keeps ``p`` sparse and
    interpolates the repulsion on a grid, in time and memory linear in
    ``n_samples``, and is chosen automatically for large data.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the embedding.
    perplexity : float, default=30.0
        Effective number of neighbours of the ``gaussian`` and ``student_t``
        supervisory kernels; must be less than ``n_samples``.
    supervisory : {"gaussian", "student_t", "knn", "precomputed", "identity"}, default="gaussian"
        Supervisory kernel ``p``. ``gaussian``/``student_t``: a bandwidth per
        point calibrated to ``perplexity`` over its ``3 * perplexity + 1``
        nearest neighbours (or one fixed ``bandwidth`` for all points);
        ``knn``: uniform over ``n_neighbors`` neighbours; ``precomputed``:
        ``X`` is a square non-negative affinity matrix, dense or sparse;
        ``identity``: each point its own only neighbour, with ``q`` over all
        points including itself (PCA's ``p``, see
        :func:`~sklearn_icon.methods.make_method` ``("pca")``).
    learned : {"student_t", "gaussian", "cosine"}, default="student_t"
        Learned kernel ``q``: Student-t with ``dof`` degrees of freedom (the
        Cauchy kernel of t-SNE when 1), Gaussian ``exp(-d^2 / (2 temperature))``
        (SNE), or ``exp(cos / temperature)`` (InfoNCE).
    alpha : float in [0, 1], default=0.0
        Debiasing of ``p``: ``(1 - alpha) p + alpha u``, with ``u`` uniform
        over the ``n_samples - 1`` other points (over all pairs when
        ``normalization="joint"``).
    alpha_q : float in [0, 1), default=0.0
        The same debiasing applied to ``q``, in log space.
    label_weight : float in [0, 1], default=0.0
        Weight of the labels passed to :meth:`fit`: each labelled sample's
        ``p(.|i)`` becomes ``(1 - label_weight) p_data + label_weight
        p_label``, with ``p_label`` uniform over the other samples that
        share its label (SupCon's ``p``; InfoNCE's when ``groups`` name the
        views of one item). Samples labelled ``-1`` keep ``p_data``, so a
        few labels guide the embedding of the rest (semi-supervised; the
        user guide shows the gain on digits). With 0, labels are ignored,
        as ``TSNE`` ignores ``y``.
    normalization : {"joint", "conditional"}, default="joint"
        ``joint``: t-SNE's ``KL(P || Q)`` over pairs with symmetrised ``P``;
        ``conditional``: I-Con's mean over points of ``KL(p(.|i) || q(.|i))``.
    mapper : {"table", "linear", "mlp", "orthonormal"} or callable, default="table"
        ``table``: a free vector per sample (non-parametric, like t-SNE);
        ``linear``/``mlp``: a function of the standardised input, trained
        with Adam, that provides :meth:`transform`; ``orthonormal``: a
        projection onto ``n_components`` orthonormal directions of the
        centred input divided by one scale (its total standard deviation),
        so the input's geometry is kept (PCA's mapper). A callable
        ``mapper(n_features, n_components)`` returning a
        :class:`torch.nn.Module` (a class, or ``functools.partial`` of one)
        brings your own encoder: it receives the standardised input as a
        ``(batch, n_features)`` float tensor and is trained like ``mlp``.
        Its parameters are initialised under a seed drawn from
        ``random_state``; define it at module level so the estimator
        pickles.
    batch_size : int or None, default=None
        With a parametric ``mapper``: None trains on the exact loss over all
        pairs (or its ``fft`` form); an int trains on mini-batches, each
        step drawing ``batch_size`` anchors uniformly and one neighbour of
        each from ``p``, with ``q(.|i)`` normalised over the batch's other
        ``2 batch_size - 1`` points (InfoNCE with the learned kernel, the
        negative-sampling form of parametric t-SNE). Time and memory per
        step then depend on the batch only, so any number of samples fits;
        ``max_iter`` counts steps.
    distributed : bool, default=False
        With ``batch_size``, train data-parallel over the initialised
        ``torch.distributed`` process group (launched with ``torchrun``, or
        after ``init_process_group``; ``gloo`` on CPUs, ``nccl`` on GPUs):
        every process calls :meth:`fit` on the same ``X`` with the same
        integer ``random_state``, draws the same global batch of
        ``batch_size`` anchors and embeds its share; embeddings are
        all-gathered so that negatives come from every process, and
        gradients summed, so each step is the single-process step on that
        batch. Every process ends with the same fitted estimator.
    augment : callable or None, default=None
        With a parametric ``mapper``, a data augmentation drawn afresh
        every time a sample is used: at every iteration of full-batch
        training (each one an epoch), for every batch with ``batch_size``.
        ``augment(X, generator)`` receives the rows as a float tensor of
        shape ``(n_rows, n_features)``, in the units of the data passed to
        :meth:`fit`, and a ``torch.Generator`` on its device seeded from
        ``random_state``, and returns a tensor of the same shape. ``p`` is
        computed once from the un-augmented data (or from
        ``y``/``groups``), so two copies of each item with ``groups`` naming
        the item give SimCLR: fresh views of every item each epoch. Define
        it at module level so the estimator pickles.
    n_neighbors : int, default=15
        Neighbours of the ``knn`` supervisory kernel.
    bandwidth : float or None, default=None
        Fixed bandwidth of the ``gaussian``/``student_t`` supervisory
        kernel; None calibrates one per point to ``perplexity``.
    dof : float, default=1.0
        Degrees of freedom of the ``student_t`` learned kernel.
    temperature : float, default=0.5
        Temperature of the ``cosine`` learned kernel; the squared width
        ``sigma^2`` of the ``gaussian`` one, ``exp(-d^2 / (2 temperature))``
        (SNE's ``exp(-d^2)`` at the default).
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden ReLU layer widths of the ``mlp`` mapper.
    early_exaggeration : float, default=12.0
        Factor on the attraction to ``p`` during the first
        ``early_exaggeration_iter`` iterations.
    early_exaggeration_iter : int, default=250
        Length of the early exaggeration phase.
    learning_rate : float or "auto", default="auto"
        Step size. For ``table`` with the Student-t kernel, ``"auto"`` is
        scikit-learn's ``max(n_samples / early_exaggeration / 4, 50)``
        during early exaggeration and openTSNE's larger
        ``max(n_samples / 4, 50)`` after it (openTSNE writes these as
        ``n / exaggeration`` on a gradient without t-SNE's factor 4), which
        reaches in 750 iterations the KL scikit-learn's constant rate
        reaches in 1000. For the Gaussian and cosine kernels, whose forces
        do not decay, it is scikit-learn's rate divided by
        ``early_exaggeration`` throughout; for parametric mappers it is
        Adam's ``1e-2``. A number is used in both phases.
    max_iter : int or None, default=None
        Maximum number of iterations. None: 750 for ``table`` (openTSNE's
        250 + 500; scikit-learn's ``TSNE`` runs 1000 at its smaller step),
        1000 Adam steps for parametric mappers and mini-batches.
    n_iter_without_progress : int, default=300
        Stop when the loss has not improved for this many iterations after
        the exaggeration phase (``table`` mapper).
    min_grad_norm : float, default=1e-7
        Stop when the gradient norm falls below this (``table`` mapper).
    metric : str or callable, default="euclidean"
        Input metric, as in ``TSNE``: any metric
        :func:`sklearn.metrics.pairwise_distances` accepts (a name, or a
        callable of two rows), or ``"precomputed"``, where ``X`` is a square
        distance matrix, dense or sparse (a sparse one's stored entries are
        the distances, and every row needs ``3 * perplexity + 1`` of them).
        As ``TSNE`` does, every metric's distances are squared before the
        kernel (so ``"euclidean"`` enters as squared Euclidean distances,
        and precomputed Euclidean distances give the same embedding as the
        features). ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` and
        ``"manhattan"`` are computed in torch (on the GPU when there is
        one); every other metric by scikit-learn on the CPU, with an exact
        neighbour search.
    metric_params : dict or None, default=None
        Keyword arguments of the metric (``VI`` of ``"mahalanobis"``, ``p``
        of ``"minkowski"``, ...), as in ``TSNE``.
    neighbors : {"auto", "exact", "approximate"}, default="auto"
        Neighbour search behind the supervisory kernel. ``approximate`` uses
        pynndescent (its first call in a process compiles numba code, which
        takes tens of seconds); ``auto`` searches exactly on a GPU and while
        ``n_samples**2 * n_features <= 2.5e11`` (up to about MNIST-70k in 50
        dimensions, where an exact search on a CPU is still faster than a
        compiled pynndescent), approximately beyond.
    pca_components : "auto", int or None, default="auto"
        Principal components the neighbour search behind ``p`` runs in
        (the data are centred and projected onto them; the mapper and
        ``init="pca"`` still see ``X``). ``auto``: the first
        ``PCA_AUTO_COMPONENTS = 50`` when ``X`` has more than
        ``PCA_AUTO_MIN_FEATURES = 100`` features and the metric is
        Euclidean, the reduction scikit-learn's ``TSNE`` and openTSNE
        advise their users to make first; the input as it is otherwise.
        On MNIST's 784 pixels the 90 nearest neighbours of a point share
        its class 91.1 % of the time in 50 components against 89.7 % in
        the pixels, with exact searches in both (the approximate one finds
        99.97 % of the pixels' exact neighbours): the components drop pixel
        noise, and the search is several times faster. ``None`` searches
        ``X`` itself, as ``TSNE`` does; an int at most ``min(n_samples,
        n_features)`` sets the number. :meth:`transform` places new points
        by their neighbours in the same components.
    method : {"auto", "exact", "fft", "barnes_hut"}, default="auto"
        How the loss and its gradient are computed. ``exact``: over all
        pairs, ``O(n_samples ** 2)`` per iteration. ``fft``: attraction over
        the edges of the sparse ``p`` and repulsion by FFT-accelerated
        interpolation (FIt-SNE, Linderman et al. 2019, as in openTSNE),
        ``O(n_samples)``; needs ``learned="student_t"``,
        ``normalization="joint"``, ``alpha_q=0`` and ``n_components <= 2``.
        ``auto``: ``fft`` from 10000 samples when those hold (as openTSNE
        switches to it), else ``exact``. ``barnes_hut``, ``TSNE``'s
        default, asks for the approximate engine: there is no Barnes-Hut
        tree here, so it runs the interpolation of ``fft`` at an accuracy
        set by ``angle`` (and the exact loss at ``angle=0``); like ``fft``
        it embeds in at most 2 dimensions, where ``TSNE``'s trees take 3.
    angle : float in [0, 1], default=0.5
        With ``method="barnes_hut"``, the accuracy of the approximation,
        as ``TSNE``'s trade-off of speed for accuracy: the interpolation
        uses boxes of width ``2 * angle`` (in embedding units, against the
        Cauchy kernel's unit length) and at least ``50 / angle`` of them per
        side; smaller is more accurate and slower, 0 is the exact loss.
        Only ``method="barnes_hut"`` reads it (``fft`` keeps openTSNE's
        grid), as only ``TSNE``'s Barnes-Hut reads it.
    init : {"pca", "random"} or ndarray of shape (n_samples, n_components), default="pca"
        Initial embedding of the ``table`` mapper (PCA scaled to a standard
        deviation of 1e-4, as scikit-learn does); for ``linear`` and
        ``orthonormal``, ``"pca"`` starts the map at the principal axes.
        As in ``TSNE``, ``"pca"`` cannot be used with a precomputed ``X``,
        which has no features.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to optimise; ``"auto"`` uses a CUDA GPU when there is one.
        Fitted state is always kept on the CPU.
    n_jobs : int or None, default=None
        CPU threads of the fit (and of :meth:`transform`), as in ``TSNE``:
        torch's thread count is set to it for the call and restored
        afterwards; -1 means all cores, None leaves torch's setting. It is
        passed on to scikit-learn for a metric computed there.
    random_state : int, RandomState instance or None, default=None
        Seeds a local generator for the initialisation; same seed, same
        device, same result.
    verbose : int, default=0
        Report progress in ``TSNE``'s lines: with 1, the neighbour search,
        the calibration (mean sigma), the KL divergence after early
        exaggeration (of the exaggerated ``p``, as ``TSNE`` prints it) and
        after the last iteration; with 2, also the error and gradient norm
        every 50 iterations.

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components)
        The embedding of the training data.
    kl_divergence_ : float
        Final loss (KL divergence, without exaggeration). With
        ``batch_size``, the mean mini-batch loss of the last 50 steps: a
        sampled cross-entropy, without ``p``'s entropy, so not comparable
        with a full-batch fit's value.
    loss_curve_ : ndarray
        Loss every 50 iterations (computing it costs a pass over all
        pairs), then the loss of the final embedding; with ``batch_size``,
        the mean batch loss of every 50 steps.
    n_iter_ : int
        Iterations run.
    learning_rate_ : float
        Step size used (of the early exaggeration phase for ``table``; see
        ``learning_rate`` for the second phase's).
    mapper_ : torch.nn.Module
        Trained mapper on the CPU in float64 (parametric mappers only).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.manifold.TSNE : The method the defaults reproduce.

    References
    ----------
    S. Alshammari, J. Hershey, A. Feldmann, W. T. Freeman, M. Hamilton.
    "I-Con: A Unifying Framework for Representation Learning", ICLR 2025.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_icon import IConEmbedding
    >>> X, _ = load_digits(return_X_y=True)
    >>> emb = IConEmbedding(random_state=0, max_iter=300).fit_transform(X[:300])
    >>> emb.shape
    (300, 2)
    """

    _parameter_constraints: dict = {
        **_BaseNeighborICon._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "supervisory": [StrOptions(set(SUPERVISORY_KERNELS))],
        "learned": [StrOptions(set(LEARNED_KERNELS))],
        "label_weight": [Interval(Real, 0, 1, closed="both")],
        "normalization": [StrOptions(set(NORMALIZATIONS))],
        "mapper": [StrOptions(set(MAPPERS)), callable],
        "augment": [callable, None],
        "batch_size": [Interval(Integral, 2, None, closed="left"), None],
        "distributed": ["boolean"],
        "dof": [Interval(Real, 0, None, closed="neither")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "early_exaggeration": [Interval(Real, 1, None, closed="left")],
        "early_exaggeration_iter": [Interval(Integral, 0, None, closed="left")],
        "learning_rate": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "n_iter_without_progress": [Interval(Integral, -1, None, closed="left")],
        "min_grad_norm": [Interval(Real, 0, None, closed="left")],
        "method": [StrOptions(set(LOSS_METHODS))],
        "angle": [Interval(Real, 0, 1, closed="both")],
        "init": [StrOptions({"pca", "random"}), np.ndarray],
        "metric": [StrOptions(set(EMBEDDING_METRICS)), callable],
        "metric_params": [dict, None],
        "pca_components": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        n_components=2,
        *,
        perplexity=30.0,
        supervisory="gaussian",
        learned="student_t",
        alpha=0.0,
        alpha_q=0.0,
        label_weight=0.0,
        normalization="joint",
        mapper="table",
        batch_size=None,
        distributed=False,
        augment=None,
        n_neighbors=15,
        bandwidth=None,
        dof=1.0,
        temperature=0.5,
        hidden_layer_sizes=(100,),
        early_exaggeration=12.0,
        early_exaggeration_iter=250,
        learning_rate="auto",
        max_iter=None,
        n_iter_without_progress=300,
        min_grad_norm=1e-7,
        metric="euclidean",
        metric_params=None,
        neighbors="auto",
        pca_components="auto",
        method="auto",
        angle=0.5,
        init="pca",
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.supervisory = supervisory
        self.learned = learned
        self.alpha = alpha
        self.alpha_q = alpha_q
        self.label_weight = label_weight
        self.normalization = normalization
        self.mapper = mapper
        self.batch_size = batch_size
        self.distributed = distributed
        self.augment = augment
        self.n_neighbors = n_neighbors
        self.bandwidth = bandwidth
        self.dof = dof
        self.temperature = temperature
        self.hidden_layer_sizes = hidden_layer_sizes
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.n_iter_without_progress = n_iter_without_progress
        self.min_grad_norm = min_grad_norm
        self.metric = metric
        self.pca_components = pca_components
        self.metric_params = metric_params
        self.neighbors = neighbors
        self.method = method
        self.angle = angle
        self.init = init
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self._precomputed_input
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = []
        # With label_weight > 0, fit needs y (or groups) to build p.
        tags.target_tags.required = self.label_weight > 0
        return tags

    def _validate_fit_input(self, X):
        """Validate ``X`` and every data-dependent parameter before any work."""
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc", "coo"],
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
        )
        n = X.shape[0]
        self._check_matrix_input(X)
        self._check_neighborhoods(
            n,
            n_neighbors=self.n_neighbors if self.supervisory == "knn" else None,
            perplexity=self.perplexity if self.supervisory in ("gaussian", "student_t") and self.bandwidth is None else None,
        )
        if isinstance(self.init, np.ndarray) and self.init.shape != (n, self.n_components):
            raise ValueError(
                f"init has shape {self.init.shape}; expected (n_samples, n_components) = {(n, self.n_components)}."
            )
        if isinstance(self.init, np.ndarray) and not np.isfinite(self.init).all():
            raise ValueError("init contains NaN or infinity.")
        if self._precomputed_input and isinstance(self.init, str) and self.init == "pca" and self.mapper == "table":
            given = "metric" if self.metric == "precomputed" else "supervisory"
            raise ValueError(
                f'The parameter init="pca" cannot be used with {given}="precomputed": a precomputed matrix has no '
                'features to take principal components of; use init="random" or an array.'
            )
        if self.metric_params is not None and self.metric == "precomputed":
            raise ValueError("metric_params cannot be used with metric='precomputed': X already holds the distances.")
        if self.batch_size is not None and self.mapper == "table":
            raise ValueError(
                "batch_size needs a parametric mapper ('linear', 'mlp', 'orthonormal' or a module factory): "
                "the table mapper's free vectors are trained on all pairs."
            )
        if self.distributed:
            self._check_distributed()
        if self.batch_size is not None and self.supervisory == "identity":
            raise ValueError("batch_size cannot be used with supervisory='identity': a point's only neighbour is itself.")
        if self.augment is not None and self.mapper == "table":
            raise ValueError(
                "augment needs a parametric mapper ('linear', 'mlp', 'orthonormal' or a module factory): "
                "the table mapper has no input to augment."
            )
        if self.mapper == "orthonormal" and self.n_components > X.shape[1]:
            raise ValueError(
                f"mapper='orthonormal' projects onto n_components={self.n_components} orthonormal "
                f"directions of the input, which needs n_components <= n_features; got n_features={X.shape[1]}."
            )
        self._loss_method(n)
        return X

    def _fft_obstacles(self):
        """Why ``method="fft"`` cannot compute this configuration's loss (empty if it can)."""
        obstacles = []
        if self.learned != "student_t":
            obstacles.append(f"learned={self.learned!r} (needs 'student_t')")
        if self.normalization != "joint":
            obstacles.append(f"normalization={self.normalization!r} (needs 'joint')")
        if self.alpha_q != 0:
            obstacles.append(f"alpha_q={self.alpha_q} (needs 0)")
        if self.supervisory == "identity":
            obstacles.append("supervisory='identity' (its q includes the self pairs)")
        if self.n_components > MAX_DIMENSIONS:
            obstacles.append(f"n_components={self.n_components} (needs at most {MAX_DIMENSIONS})")
        return obstacles

    def _loss_method(self, n_samples):
        """``"exact"`` or ``"fft"`` for this fit; raises if an approximation was asked for and cannot be done."""
        if self.method == "barnes_hut" and self.angle == 0:
            # Barnes-Hut at angle 0 summarises no cell: the exact loss.
            return "exact"
        obstacles = self._fft_obstacles()
        if self.method in ("fft", "barnes_hut") and obstacles:
            raise ValueError(
                f"method={self.method!r} cannot be used with " + ", ".join(obstacles) + "; use method='exact'."
            )
        if self.method == "auto":
            return "fft" if not obstacles and n_samples >= FFT_MIN_SAMPLES else "exact"
        return "fft" if self.method == "barnes_hut" else self.method

    @property
    def _closed_form(self):
        """Whether the exact loss has the closed-form gradient (else autograd)."""
        return self.learned in DISTANCE_KERNELS and self.supervisory != "identity"

    def _check_memory(self, n, dtype, device):
        buffers = exact_buffers(
            self.normalization,
            closed_form=self._closed_form,
            alpha_q=self.alpha_q,
            dense_input=self.bandwidth is not None or self._precomputed_input,
        )
        check_memory(
            buffers * n * n * (torch.finfo(dtype).bits // 8),
            device,
            f"The exact I-Con loss on {n} samples holds {buffers} n x n matrices and",
            "Subsample the data, or use fewer samples per fit; exact mode is meant for up to "
            "a few tens of thousands of points.",
        )

    def _labels(self, y, groups, n_samples):
        """Encoded labels (``-1`` for none) to mix into ``p``, or None when they are not used."""
        if self.label_weight == 0:
            return None
        if y is None and groups is None:
            raise ValueError(
                f"{type(self).__name__} with label_weight={self.label_weight} requires y to be passed, but the "
                "target y is None: pass y (classes, -1 for unlabelled samples) or groups (the id of the item "
                "each sample is a view of) to fit."
            )
        if y is not None and groups is not None:
            raise ValueError("Pass y or groups to fit, not both: both define which samples share a label.")
        name = "y" if y is not None else "groups"
        values = column_or_1d(y if y is not None else groups, warn=True)
        if values.shape[0] != n_samples:
            raise ValueError(f"{name} has {values.shape[0]} entries; X has {n_samples} samples.")
        return torch.as_tensor(encode_shared_labels(values, name))

    def _neighbor_projection(self, X):
        """``(mean, axes)`` of the principal components the neighbour search runs in, or None (``pca_components``).

        Raises
        ------
        ValueError
            If an explicit number exceeds ``min(n_samples, n_features)``,
            or the input has no features to project (a precomputed matrix).
        """
        if self._precomputed_input or self.supervisory in ("precomputed", "identity"):
            obstacle = "X is a precomputed matrix here"
        elif not (isinstance(self.metric, str) and self.metric in ("euclidean", "sqeuclidean")):
            # Only "auto" asks for the Euclidean metric; an explicit number projects for any.
            obstacle = None if self.pca_components != "auto" else "the metric is not Euclidean"
        else:
            obstacle = None
        return principal_projection(
            X, self.pca_components, obstacle, verbose=self.verbose, prefix=type(self).__name__
        )

    def _neighbor_space(self, X, device):
        """``X`` as the neighbour search sees it: projected by the fitted components, if any, as float64 on ``device``."""
        data = to_torch(X if self._precomputed_input or not sp.issparse(X) else X.toarray(), device)
        projection = getattr(self, "_neighbor_pca", None)
        if projection is None:
            return data
        mean, axes = projection
        return (data - mean.to(device)) @ axes.to(device)

    def _supervisory(self, X, device, labels=None):
        """The supervisory distribution ``p`` in float64 on ``device``."""
        data = self._neighbor_space(X, device)
        return supervisory_distribution(
            data,
            kernel=self.supervisory,
            normalization=self.normalization,
            metric=self.metric,
            perplexity=self.perplexity,
            n_neighbors=self.n_neighbors,
            bandwidth=self.bandwidth,
            neighbors=self.neighbors,
            random_state=self.random_state,
            labels=None if labels is None else labels.to(device),
            label_weight=self.label_weight,
            metric_params=self.metric_params,
            n_jobs=self.n_jobs,
            squared_metric=True,
            verbose=self.verbose,
            prefix=type(self).__name__,
        )

    def _objective(self, P, method):
        if method == "fft":
            grid = barnes_hut_grid(self.angle) if self.method == "barnes_hut" else {}
            return InterpolatedStudentTObjective(
                P if P.is_sparse else P.to_sparse(), dof=self.dof, alpha=self.alpha, **grid
            )
        objective = DistanceKernelObjective if self._closed_form else AutogradObjective
        return objective(
            P,
            self.learned,
            self.normalization,
            alpha=self.alpha,
            alpha_q=self.alpha_q,
            dof=self.dof,
            temperature=self.temperature,
        )

    def _check_distributed(self):
        """Why ``distributed=True`` cannot run here, as a ValueError (nothing if it can)."""
        if self.batch_size is None:
            raise ValueError("distributed=True needs batch_size: processes share the anchors of each mini-batch.")
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group: launch with torchrun, "
                "or call torch.distributed.init_process_group first."
            )
        if not isinstance(self.random_state, Integral):
            raise ValueError(
                "distributed=True needs an integer random_state, the same in every process, so that all "
                "build the same p and draw the same batches."
            )
        world = torch.distributed.get_world_size()
        if self.batch_size % world:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of the number of processes ({world}): "
                "each takes an equal share of the anchors."
            )

    def _sampled_objective(self, P):
        """The mini-batch loss and the sampler of ``p``'s neighbours, for ``batch_size``."""
        loss = SampledNeighborLoss(
            self.learned, alpha=self.alpha, alpha_q=self.alpha_q, dof=self.dof, temperature=self.temperature
        )
        P = (P if P.is_sparse else P.to_sparse()).coalesce().cpu()
        return loss, WalkSampler(P, n_walk_steps=0)

    def _initial_table(self, X, generator):
        if isinstance(self.init, np.ndarray):
            return torch.tensor(self.init, dtype=torch.float32)
        if self.init == "random":
            return random_table(X.shape[0], self.n_components, generator)
        dense = X.toarray() if sp.issparse(X) else X
        return pca_table(torch.tensor(np.asarray(dense, dtype=np.float64)), self.n_components, generator)

    def _fit_table(self, X, objective, generator, device, schedule):
        """t-SNE's gradient descent on a free embedding vector per sample."""
        lr, late_lr = table_learning_rates(X.shape[0], self.learned, self.early_exaggeration, self.learning_rate)
        Y0 = self._initial_table(X, generator).to(device)
        Y, result = train_table(
            objective,
            Y0,
            learning_rate=lr,
            late_learning_rate=late_lr,
            n_iter_without_progress=self.n_iter_without_progress,
            min_grad_norm=self.min_grad_norm,
            **schedule,
        )
        return Y.cpu().numpy(), result, lr

    def _fit_parametric(self, X, objective, generator, device, dtype, schedule):
        """Adam on a linear or MLP map of the standardised input."""
        lr = 1e-2 if self.learning_rate == "auto" else float(self.learning_rate)
        mean, scale = fit_standardizer(X.astype(np.float64), shared_scale=self.mapper == "orthonormal")
        Xs = torch.as_tensor((X - mean) / scale, dtype=dtype, device=device)
        projection = None
        if self.mapper in ("linear", "orthonormal") and self.init == "pca":
            projection = padded_principal_axes(Xs.cpu(), self.n_components)
        if callable(self.mapper):
            module = build_user_module(self.mapper, Xs.shape[1], self.n_components, generator).to(dtype)
        else:
            module = make_mapper(
                self.mapper,
                n_features=Xs.shape[1],
                n_components=self.n_components,
                projection=projection,
                hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                generator=generator,
                dtype=dtype,
                device="cpu",
            )
        module = module.to(device)
        augment = None
        if self.augment is not None:
            augment = standardized_augmentation(self.augment, X, mean, scale, generator, device, dtype)
        if self.batch_size is None:
            result = train_mapper(module, Xs, objective, learning_rate=lr, augment=augment, **schedule)
        else:
            loss, sampler = objective
            shard = None
            if self.distributed:
                shard = ProcessGroupShard(self.batch_size, device)
                shard.broadcast_module(module)
            result = train_sampled(
                module, Xs, sampler, loss, batch_size=self.batch_size, generator=generator, learning_rate=lr,
                augment=augment, shard=shard, **schedule
            )
        module = finalize_mapper(module)
        return module.cpu().to(torch.float64).eval(), (mean, scale), result, lr

    @_fit_context(prefer_skip_nested_validation=True)
    @keep_state_on_failure
    def fit(self, X, y=None, groups=None):
        """Fit the embedding to ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, n_samples)
            Training data; a square distance matrix when
            ``metric="precomputed"``, an affinity matrix when
            ``supervisory="precomputed"``.
        y : array-like of shape (n_samples,), default=None
            Class labels, ``-1`` for unlabelled samples; used only when
            ``label_weight > 0`` (supervised or semi-supervised embedding,
            SupCon), ignored otherwise.
        groups : array-like of shape (n_samples,), default=None
            Instead of ``y``: the id of the item each sample is a view of
            (an augmentation, a second modality), so that views are each
            other's positives (InfoNCE). Used only when
            ``label_weight > 0``; inside a :class:`~sklearn.pipeline.Pipeline`
            it is routed with ``set_fit_request(groups=True)`` under
            scikit-learn's metadata routing.

        Returns
        -------
        self : IConEmbedding
            The fitted estimator.
        """
        with torch_threads(self.n_jobs):
            return self._fit(X, y, groups)

    def _fit(self, X, y, groups):
        X = self._validate_fit_input(X)
        n = X.shape[0]
        labels = self._labels(y, groups, n)
        device = resolve_device(self.device)
        dtype = torch.float32
        batched = self.batch_size is not None
        method = None if batched else self._loss_method(n)
        if method == "exact":
            self._check_memory(n, dtype, device)
        generator = make_generator(self.random_state)

        self._neighbor_pca = self._neighbor_projection(X)
        P = self._supervisory(X, device, labels).to(dtype)
        objective = self._sampled_objective(P) if batched else self._objective(P, method)
        if self.max_iter is not None:
            max_iter = self.max_iter
        else:
            max_iter = TABLE_MAX_ITER if self.mapper == "table" else ADAM_MAX_ITER
        schedule = dict(
            max_iter=max_iter,
            early_exaggeration=self.early_exaggeration,
            early_exaggeration_iter=self.early_exaggeration_iter,
            verbose=self.verbose,
        )
        if self.mapper == "table":
            embedding, result, lr = self._fit_table(X, objective, generator, device, schedule)
            mapper = None
        else:
            dense = X.toarray() if sp.issparse(X) else np.asarray(X)
            mapper, standardizer, result, lr = self._fit_parametric(
                dense, objective, generator, device, dtype, schedule
            )

        self.mapper_ = mapper
        if mapper is not None:
            self._standardizer = standardizer
            embedding = self._map(dense)
        self.embedding_ = embedding
        self.loss_curve_ = np.asarray(result.losses, dtype=np.float64)
        self.kl_divergence_ = float(self.loss_curve_[-1])
        self.n_iter_ = int(result.n_iter)
        self.learning_rate_ = lr
        self._n_features_out = self.n_components
        # transform places new points against the training data (table mapper).
        self._reference_data = X if mapper is None else None
        return self

    def fit_transform(self, X, y=None, groups=None):
        """Fit the embedding to ``X`` and return it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, n_samples)
            Training data, as in :meth:`fit`.
        y : array-like of shape (n_samples,), default=None
            Labels, as in :meth:`fit`.
        groups : array-like of shape (n_samples,), default=None
            Group ids, as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            The embedding of ``X``.
        """
        return self.fit(X, y, groups=groups).embedding_

    def _map(self, X):
        return apply_mapper(self.mapper_, self._standardizer, X)

    def transform(self, X):
        """Embed new points: by the trained mapper, or placed into the fitted table embedding.

        With a parametric ``mapper``, the mapper is applied to ``X``. With
        ``mapper="table"`` (t-SNE), new points are placed into the fitted
        embedding by openTSNE's procedure (``TSNEEmbedding.transform``) in
        I-Con terms: each new point gets its own ``p(.|i)`` over the
        training points (the fit's kernel and metric, calibrated to the
        fit's ``perplexity``), starts at the median embedding of its 25
        nearest training points, and moves for 250 iterations of t-SNE's
        gradient descent on ``KL(p(.|i) || q(.|i))``, ``q`` over the fixed
        training embedding. No term couples two new points, so a point's
        result does not depend on the others transformed with it. A
        training point transformed this way lands near, not exactly at,
        its fitted position: the fit placed it jointly with all others.
        The neighbour search is exact, ``O(n_new * n_train)``; with the
        Student-t kernel in 1 or 2 dimensions the repulsion of the fixed
        training embedding is interpolated on a grid once, so each
        iteration costs ``O(n_new)``; other kernels, dimensions or debiasing
        sum over all training points every iteration. For this the fitted
        estimator keeps its training data (as a nearest-neighbours model
        does).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data; with ``metric="precomputed"``, their distances to the
            training points, shape (n_samples, n_training_samples); with
            ``supervisory="precomputed"``, their affinities to them.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Their embedding, in float64.
        """
        check_is_fitted(self, "embedding_")
        X = validate_data(self, X, accept_sparse=["csr", "csc", "coo"], dtype=[np.float64, np.float32], reset=False)
        if self.mapper_ is not None:
            return self._map(X.toarray() if sp.issparse(X) else X)
        with torch_threads(self.n_jobs):
            return self._place(X)

    def _place(self, X):
        """openTSNE's placement of new rows into the fitted table embedding (see :meth:`transform`)."""
        if self.supervisory == "identity":
            raise ValueError(
                "transform cannot place new points with supervisory='identity': a new point's only neighbour "
                "would be itself, which is not in the fitted embedding."
            )
        if self._precomputed_input and has_negative_entry(X):
            what = "distances" if self.metric == "precomputed" else "affinities"
            raise ValueError(f"X should contain positive {what} to the training points.")
        device = torch.device("cpu")
        reference = self._reference_data
        if self._precomputed_input:
            query, reference = to_torch(X, device), None
        else:
            query, reference = self._neighbor_space(X, device), self._neighbor_space(reference, device)
        P, nearest = placement_distribution(
            query,
            reference,
            kernel=self.supervisory,
            metric=self.metric,
            perplexity=self.perplexity,
            n_neighbors=self.n_neighbors,
            bandwidth=self.bandwidth,
            metric_params=self.metric_params,
            n_jobs=self.n_jobs,
            squared_metric=True,
            n_nearest=PLACEMENT_NEAREST,
        )
        embedding = torch.as_tensor(self.embedding_, dtype=torch.float64)
        if nearest is None:
            start = torch.sparse.mm(P, embedding)
        else:
            start = torch.quantile(embedding[nearest], 0.5, dim=1)
        objective = placement_objective(
            P, embedding, self.learned, alpha=self.alpha, alpha_q=self.alpha_q, dof=self.dof,
            temperature=self.temperature,
        )
        placed, _ = train_placement(
            objective, start, n_iter=PLACEMENT_ITER, learning_rate=PLACEMENT_LEARNING_RATE,
            exaggeration=PLACEMENT_EXAGGERATION, verbose=self.verbose,
        )
        return placed.numpy()

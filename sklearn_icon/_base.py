"""What the estimators share: their base classes and constraints, device, seeds, memory, input scaling.

As scikit-learn's ``_BaseKMeans`` does, the base classes hold the
parameter constraints every estimator repeats; each estimator merges its
own with ``{**Base._parameter_constraints, ...}``.
"""

import contextlib
import functools
import os
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ._backend.affinities.neighbors import METRICS, NEIGHBOR_METHODS, TORCH_METRICS, is_torch_metric
from ._backend.initialization import principal_axes
from ._backend.mappers import SparseRows
from ._backend.optim import announce

DEVICE_CONSTRAINT = [StrOptions({"auto", "cpu", "cuda"})]


class _BaseICon(BaseEstimator):
    """What every I-Con estimator has: debiasing on both sides, an MLP's widths, device, seed, verbosity."""

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "alpha_q": [Interval(Real, 0, 1, closed="left")],
        "hidden_layer_sizes": [tuple, list],
        "device": DEVICE_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }


class _BaseNeighborICon(_BaseICon):
    """An I-Con estimator whose ``p`` comes from neighbors in input space (embedding, clustering).

    Holds the neighbor search's constraints and the checks of the input a
    neighbor search reads: precomputed matrices and neighborhoods no
    larger than the data.
    """

    _parameter_constraints: dict = {
        **_BaseICon._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "perplexity": [Interval(Real, 0, None, closed="neither")],
        "bandwidth": [Interval(Real, 0, None, closed="neither"), None],
        "metric": [StrOptions(set(METRICS))],
        "neighbors": [StrOptions(set(NEIGHBOR_METHODS))],
    }

    @property
    def _precomputed_input(self):
        """Whether ``X`` is a square matrix (distances or affinities) instead of features."""
        return self.metric == "precomputed" or self.supervisory == "precomputed"

    def _check_matrix_input(self, X):
        """A precomputed ``X`` must be a square, non-negative matrix, and the neighbor search able to read it."""
        check_neighbor_search(self.neighbors, self.metric)
        if self._precomputed_input:
            check_precomputed(X, self.mapper, "affinity" if self.supervisory == "precomputed" else "distance")

    def _check_neighborhoods(self, n_samples, *, n_neighbors=None, perplexity=None):
        """Neighborhoods smaller than the data (None skips a check), and a well-formed MLP."""
        check_neighborhood_sizes(n_samples, n_neighbors=n_neighbors, perplexity=perplexity)
        if self.mapper == "mlp":
            check_hidden_layer_sizes(self.hidden_layer_sizes)


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` when a GPU is present, else ``"cpu"``.

    Raises
    ------
    ValueError
        If ``"cuda"`` is asked for on a machine without one.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available; use device='auto' or 'cpu'.")
    return torch.device(device)


def make_generator(random_state):
    """A fresh CPU ``torch.Generator`` seeded from ``random_state``.

    torch's global seed is never touched, so fits do not disturb the user's
    own random streams; the same ``random_state`` gives the same seed.
    """
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    return torch.Generator(device="cpu").manual_seed(int(seed))




@contextlib.contextmanager
def torch_threads(n_jobs):
    """Run a block with torch's CPU threads set to ``n_jobs``, restored afterwards.

    ``n_jobs`` has joblib's meaning: None leaves torch's setting, -1 is all
    cores, ``-k`` all but ``k - 1``.
    """
    if n_jobs is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(effective_n_jobs(n_jobs))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def available_memory(device):
    """Bytes that can still be allocated on ``device`` (best effort)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_bytes, device, what, remedy):
    """Refuse a fit, before allocating, that would need more memory than exists.

    Parameters
    ----------
    n_bytes : int
        Estimated peak allocation.
    device : torch.device
    what : str
        What needs the memory, for the message.
    remedy : str
        What the user can change, for the message.

    Raises
    ------
    MemoryError
    """
    free = available_memory(device)
    if free is not None and n_bytes > free:
        raise MemoryError(
            f"{what} needs about {n_bytes / 2**30:.1f} GiB but only "
            f"{free / 2**30:.1f} GiB is available on {device.type}. {remedy}"
        )


def fit_standardizer(X, sample_weight=None, shared_scale=False):
    """Per-feature mean and scale, weighted by ``sample_weight`` if given.

    Constant features get scale one. Weighting makes a weight of ``k`` the
    same as ``k`` copies of the row, and a weight of zero the same as no row.
    ``shared_scale``: one scale for all features, the total standard
    deviation, so that an orthonormal projection keeps the input's
    geometry, which a per-feature scale would change.

    A sparse ``X`` is scaled, not centred (centring would densify it): the
    mean is zero and the scale is shared, the total standard deviation, so
    that rare features (a TF-IDF matrix's rare words) are not blown up to
    unit variance and the geometry its neighbours were found in is kept. For
    a linear first layer, centring changes only the bias, which it learns.
    """
    if sp.issparse(X):
        return np.zeros(X.shape[1]), np.full(X.shape[1], _sparse_total_std(sp.csr_matrix(X), sample_weight))
    if sample_weight is None:
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
    else:
        mean = np.average(X, axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=sample_weight))
    if shared_scale:
        return mean, np.full_like(scale, np.sqrt(np.sum(X.var(axis=0))) or 1.0)
    scale[scale == 0] = 1.0
    return mean, scale


def _sparse_total_std(X, sample_weight):
    """Root of the summed (weighted) feature variances of a CSR matrix, one if they are zero."""
    weight = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    weight = weight / weight.sum()
    mean = X.T @ weight
    mean_square = X.multiply(X).T @ weight
    total = float(np.sum(np.maximum(mean_square - mean * mean, 0.0)))
    return np.sqrt(total) if total > 0 else 1.0


def standardized_tensor(X, standardizer, dtype=torch.float64, device="cpu"):
    """``(X - mean) / scale`` as a mapper's input: :class:`SparseRows` for a sparse ``X`` (its mean is zero), a
    dense tensor otherwise."""
    mean, scale = standardizer
    if sp.issparse(X):
        return SparseRows.from_scipy(sp.csr_matrix(X, dtype=np.float64).multiply(1.0 / scale[None, :]), dtype, device)
    return torch.as_tensor((np.asarray(X, dtype=np.float64) - mean) / scale, dtype=dtype, device=device)


def has_negative_entry(X):
    """Whether a dense or sparse matrix holds a negative (stored) entry."""
    return (X.data if sp.issparse(X) else X).min(initial=0) < 0


def check_precomputed(X, mapper, what="distance", setting=None):
    """Validate a precomputed distance or affinity matrix given as ``X``, in ``TSNE``'s words.

    Parameters
    ----------
    X : ndarray or sparse matrix
    mapper : str or callable
        The estimator's mapper: only ``"table"`` fits a matrix without features.
    what : {"distance", "affinity"}, default="distance"
        What ``X`` holds, for the messages.
    setting : str, optional
        The parameter setting that made ``X`` a matrix, for the messages;
        ``metric='precomputed'`` for distances, ``supervisory='precomputed'``
        for affinities by default.

    Raises
    ------
    ValueError
        If ``X`` is not square, has a negative entry, or ``mapper`` needs
        input features that a precomputed matrix does not have.
    """
    if setting is None:
        setting = ("metric" if what == "distance" else "supervisory") + "='precomputed'"
    if X.shape[0] != X.shape[1]:
        raise ValueError(f"X should be a square {what} matrix with {setting}; got shape {X.shape}.")
    if has_negative_entry(X):
        plural = "affinities" if what == "affinity" else "distances"
        raise ValueError(
            f"Negative values in data passed as X with {setting}: X should contain positive {plural} (a "
            f"precomputed {what} matrix must be non-negative)."
        )
    if mapper != "table":
        raise ValueError(
            f"mapper={mapper!r} maps input features, but X is a precomputed matrix with no features; use mapper='table'."
        )


def check_neighborhood_sizes(n_samples, *, n_neighbors=None, perplexity=None):
    """Clear errors for neighbourhoods as large as the data set (None skips a check)."""
    if n_neighbors is not None and n_neighbors >= n_samples:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be less than n_samples={n_samples}; "
            "lower n_neighbors or pass more samples."
        )
    if perplexity is not None and perplexity >= n_samples:
        raise ValueError(
            f"perplexity={perplexity} must be less than n_samples={n_samples}; "
            "lower the perplexity or pass more samples."
        )


def check_neighbor_search(neighbors, metric):
    """An approximate search needs features in one of the metrics it knows: refuse it otherwise."""
    if neighbors == "approximate" and metric == "precomputed":
        raise ValueError(
            "neighbors='approximate' searches feature vectors, but metric='precomputed' gives distances; "
            "use neighbors='exact' or 'auto'."
        )
    if neighbors == "approximate" and not is_torch_metric(metric):
        raise ValueError(
            f"neighbors='approximate' searches in one of {TORCH_METRICS}; metric={metric!r} is searched exactly: "
            "use neighbors='exact' or 'auto'."
        )


def check_hidden_layer_sizes(hidden_layer_sizes):
    """Hidden widths must be positive integers."""
    if not all(isinstance(h, Integral) and h > 0 for h in hidden_layer_sizes):
        raise ValueError(f"hidden_layer_sizes must hold positive integers; got {hidden_layer_sizes!r}.")


def to_torch(X, device):
    """A validated matrix as a float64 torch tensor: sparse COO if ``X`` is sparse, else dense."""
    if sp.issparse(X):
        coo = sp.coo_matrix(X)
        indices = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.tensor(coo.data, dtype=torch.float64)
        return torch.sparse_coo_tensor(indices, values, X.shape, check_invariants=False).coalesce().to(device)
    return torch.tensor(np.asarray(X, dtype=np.float64), device=device)


def apply_mapper(mapper, standardizer, X):
    """Run a fitted float64 mapper on ``X`` standardised as in fit; numpy out.

    Float64 and no batch-dependent layers make each row's output independent
    of the others in the batch.
    """
    with torch.no_grad():
        return mapper(standardized_tensor(X, standardizer)).numpy()


def keep_state_on_failure(fit):
    """Decorate ``fit`` so that a fit that raises leaves the estimator as it was.

    Validation (which sets ``n_features_in_``) and training run before the
    fitted attributes are replaced; if anything raises on the way, the
    ``KeyboardInterrupt`` of a user who stops a long fit included, the
    estimator's previous attributes are put back, so an already fitted
    model keeps predicting exactly as before.
    """

    @functools.wraps(fit)
    def guarded_fit(self, *args, **kwargs):
        saved = dict(self.__dict__)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    return guarded_fit


def encode_shared_labels(values, name, unlabelled=-1):
    """Labels or group ids as integer codes, ``unlabelled`` kept, checked for pairs to use.

    Parameters
    ----------
    values : ndarray of shape (n_samples,)
        Classes or group ids; numbers equal to ``unlabelled`` mark samples
        without one.
    name : str
        ``"y"`` or ``"groups"``, for the messages.
    unlabelled : int, default=-1

    Returns
    -------
    ndarray of int64, shape (n_samples,)

    Raises
    ------
    ValueError
        On NaN or infinity, or when no two samples share a value.
    MemoryError
        When the pairs within labels would not fit in memory.
    """
    n_samples = values.shape[0]
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinity; mark unlabelled samples with -1.")
    labelled = values != unlabelled if values.dtype.kind in "iuf" else np.ones(n_samples, dtype=bool)
    codes = np.full(n_samples, unlabelled, dtype=np.int64)
    _, codes[labelled] = np.unique(values[labelled], return_inverse=True)
    sizes = np.bincount(codes[labelled])
    if not (sizes > 1).any():
        raise ValueError(f"No two samples share a value of {name}: label_weight has no pairs to use.")
    n_pairs = float((sizes * (sizes - 1.0)).sum())
    # Three 8-byte numbers (two indices, one value) per pair, twice while coalescing.
    check_memory(
        48 * n_pairs,
        torch.device("cpu"),
        f"The label distribution pairs every two samples of a label ({n_pairs:.3g} pairs) and",
        "Label fewer samples (mark the others -1) or split large classes.",
    )
    return codes


#: ``pca_components="auto"``: with more than ``PCA_AUTO_MIN_FEATURES`` features (and what each estimator
#: asks besides), the first ``PCA_AUTO_COMPONENTS`` principal components (TSNE's and openTSNE's advice).
PCA_AUTO_MIN_FEATURES = 100
PCA_AUTO_COMPONENTS = 50


def principal_projection(X, pca_components, eligible, *, verbose=0, prefix="", purpose="Searching neighbours"):
    """``(mean, axes)`` of the principal components ``pca_components`` asks for on ``X``, or None.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
    pca_components : "auto", int or None
        ``auto``: :data:`PCA_AUTO_COMPONENTS` when ``eligible`` and ``X``
        has more than :data:`PCA_AUTO_MIN_FEATURES` features (and more
        samples than components); an int: that many; None: no projection.
    eligible : str or None
        None when the estimator's configuration can work in components; else
        why not, which makes an explicit number an error and ``auto`` none.
    verbose : int, default=0
    prefix, purpose : str
        The progress line's estimator name and what the components are for.

    Raises
    ------
    ValueError
        If an explicit number exceeds ``min(n_samples, n_features)`` or the
        configuration cannot use components.
    """
    if pca_components is None:
        return None
    n_samples, n_features = X.shape
    if pca_components == "auto":
        if eligible is not None or n_features <= PCA_AUTO_MIN_FEATURES or n_samples <= PCA_AUTO_COMPONENTS:
            return None
        n_kept = PCA_AUTO_COMPONENTS
    else:
        if eligible is not None:
            raise ValueError(f"pca_components={pca_components} projects features, but {eligible}; use pca_components=None.")
        n_kept = pca_components
        if n_kept > min(n_samples, n_features):
            raise ValueError(
                f"pca_components={n_kept} must be at most min(n_samples, n_features) = {min(n_samples, n_features)}."
            )
    data = torch.as_tensor(X.toarray() if sp.issparse(X) else np.asarray(X), dtype=torch.float64)
    announce(verbose, prefix, f"{purpose} in the first {n_kept} principal components of the {n_features} features...")
    return data.mean(0), principal_axes(data, n_kept)

"""Helpers shared by the estimators: device, seeds, memory and input scaling."""

import functools
import os
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions

DEVICE_CONSTRAINT = [StrOptions({"auto", "cpu", "cuda"})]


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


def fit_standardizer(X, sample_weight=None):
    """Per-feature mean and scale, weighted by ``sample_weight`` if given.

    Constant features get scale one. Weighting makes a weight of ``k`` the
    same as ``k`` copies of the row, and a weight of zero the same as no row.
    """
    if sample_weight is None:
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
    else:
        mean = np.average(X, axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=sample_weight))
    scale[scale == 0] = 1.0
    return mean, scale


def check_precomputed(X, mapper):
    """Validate a precomputed distance or affinity matrix given as ``X``.

    Raises
    ------
    ValueError
        If ``X`` is not square, has a negative entry, or ``mapper`` needs
        input features that a precomputed matrix does not have.
    """
    if X.shape[0] != X.shape[1]:
        raise ValueError(f"With metric or supervisory='precomputed', X must be a square matrix; got shape {X.shape}.")
    if (X.data if sp.issparse(X) else X).min(initial=0) < 0:
        raise ValueError("A precomputed distance or affinity matrix must be non-negative.")
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
    """An approximate search needs features: refuse it for precomputed distances."""
    if neighbors == "approximate" and metric == "precomputed":
        raise ValueError(
            "neighbors='approximate' searches feature vectors, but metric='precomputed' gives distances; "
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
    mean, scale = standardizer
    inputs = torch.as_tensor((np.asarray(X, dtype=np.float64) - mean) / scale, dtype=torch.float64)
    with torch.no_grad():
        return mapper(inputs).numpy()


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

"""Starting points and scales: principal axes, the starts of tables and cluster logits, step-size rules."""

import numpy as np
import scipy.sparse as sp
import torch


def principal_axes(X, n_components):
    """Top principal axes of ``X``, with a deterministic sign.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
    n_components : int

    Returns
    -------
    torch.Tensor of shape (n_features, n_components)
        Orthonormal columns, largest variance first; each column's entry of
        largest magnitude is positive (as scikit-learn's ``svd_flip``).
    """
    Xc = (X - X.mean(0, keepdim=True)).to(torch.float64)
    if Xc.shape[1] <= Xc.shape[0]:
        _, vectors = torch.linalg.eigh(Xc.T @ Xc)
        axes = vectors.flip(1)[:, :n_components]
    else:
        _, _, Vh = torch.linalg.svd(Xc, full_matrices=False)
        axes = Vh[:n_components].T
    pivot = axes.abs().argmax(0)
    signs = torch.sign(axes[pivot, torch.arange(axes.shape[1])])
    signs[signs == 0] = 1.0
    return (axes * signs).to(X.dtype)


def learning_rate_auto(n_samples, early_exaggeration):
    """scikit-learn's ``learning_rate="auto"`` for t-SNE: ``max(n / ee / 4, 50)``."""
    return max(n_samples / early_exaggeration / 4.0, 50.0)


def late_learning_rate_auto(n_samples):
    """openTSNE's step after early exaggeration, ``n`` in its units: ``max(n / 4, 50)`` here.

    openTSNE's gradient lacks t-SNE's factor 4, so its ``n / exaggeration``
    is ``n / exaggeration / 4`` on this gradient: scikit-learn's rule during
    the exaggeration phase, ``early_exaggeration`` times larger after it.
    """
    return max(n_samples / 4.0, 50.0)


def pca_table(X, n_components, generator, scale=1e-4):
    """scikit-learn's PCA start of t-SNE: the principal components, the first scaled to std ``scale``.

    Parameters
    ----------
    X : torch.Tensor of shape (n, n_features), float64
    n_components : int
        With fewer features than components, the extra axes start random.
    generator : torch.Generator
    scale : float, default=1e-4

    Returns
    -------
    torch.Tensor of shape (n, n_components), float32
    """
    n = X.shape[0]
    axes = principal_axes(X, min(n_components, X.shape[1]))
    Y = (X - X.mean(0)) @ axes
    if Y.shape[1] < n_components:
        extra = torch.randn((n, n_components - Y.shape[1]), generator=generator, dtype=Y.dtype)
        Y = torch.cat([Y, extra], 1)
    std = Y[:, 0].std()
    return (Y / (std if std > 0 else 1.0) * scale).to(torch.float32)


def random_table(n, n_components, generator, scale=1e-4):
    """A random start of t-SNE: Gaussian with standard deviation ``scale``."""
    return scale * torch.randn((n, n_components), generator=generator)


def padded_principal_axes(X, n_components):
    """Principal axes of ``X`` as a linear map's start, zero columns past ``n_features``.

    Returns
    -------
    torch.Tensor of shape (n_features, n_components)
    """
    axes = principal_axes(X, min(n_components, X.shape[1]))
    if axes.shape[1] < n_components:
        pad = torch.zeros((X.shape[1], n_components - axes.shape[1]), dtype=axes.dtype)
        axes = torch.cat([axes, pad], 1)
    return axes


def table_learning_rates(n_samples, learned, early_exaggeration, learning_rate):
    """The step sizes of a table's two phases: ``learning_rate="auto"``'s rules, or one number.

    For the Student-t kernel, scikit-learn's rule during exaggeration and
    openTSNE's after it; for the Gaussian and cosine kernels, whose forces
    no heavy tail damps, scikit-learn's rule divided by the exaggeration
    throughout.

    Returns
    -------
    early, late : float, float or None
        ``late`` is None when the second phase keeps the first's step.
    """
    if learning_rate != "auto":
        return float(learning_rate), None
    early = learning_rate_auto(n_samples, early_exaggeration)
    if learned == "student_t":
        return early, late_learning_rate_auto(n_samples)
    return early / early_exaggeration, None


#: Walk steps smoothing the random start of free cluster logits.
TABLE_INIT_WALKS = 10


def smoothed_logits(P, n_clusters, generator, dtype, n_walks=TABLE_INIT_WALKS):
    """Random cluster logits smoothed by walks on ``p``'s graph (a few power iterations).

    Free logits started independently per point get stuck in fragmented,
    graph-local clusters; smoothing them along the graph first gives
    neighbors similar starts.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), sparse COO
    n_clusters : int
    generator : torch.Generator
    dtype : torch.dtype
    n_walks : int, default=TABLE_INIT_WALKS

    Returns
    -------
    torch.Tensor of shape (n, n_clusters), on the CPU
        Each column standardised.
    """
    logits = torch.randn((P.shape[0], n_clusters), generator=generator, dtype=dtype).to(P.device)
    for _ in range(n_walks):
        logits = torch.sparse.mm(P, logits)
        logits = (logits - logits.mean(0)) / logits.std(0).clamp_min(1e-12)
    return logits.cpu()


def unit_spread(X):
    """``X`` centred and divided by its spread (root mean squared distance to the mean), and the spread.

    The c-SNE loss depends on the data only through ``|x_i - x_j| /
    bandwidth``; in these units it stays finite in float32 for data
    scaled by 1e-30 or 1e30, and for identical points (spread one).

    Parameters
    ----------
    X : ndarray of shape (n, n_features)

    Returns
    -------
    scaled : ndarray of shape (n, n_features)
    spread : float
    """
    centred = X - X.mean(0)
    spread = float(np.sqrt((centred**2).sum(1).mean()))
    spread = spread if np.isfinite(spread) and spread > 0 else 1.0
    return centred / spread, spread


def squared_distances(X, centres):
    """``|x_i - c_k|^2`` for every point and centre, by ``|x|^2 - 2 x . c + |c|^2`` (never ``n x k x d``).

    ``X`` may be a scipy sparse matrix; it is never densified.
    """
    squared_norms = np.asarray(X.multiply(X).sum(1)).ravel() if sp.issparse(X) else (X * X).sum(1)
    squared = squared_norms[:, None] - 2.0 * np.asarray(X @ centres.T) + (centres * centres).sum(1)[None, :]
    return np.maximum(squared, 0.0)


def soft_kmeans_temperature(squared):
    """``s`` of the soft k-means assignment: the mean squared distance of the points to their nearest centre.

    ``squared`` is :func:`squared_distances` of the points to the centres.
    ``softmax(-|x - c|^2 / s)`` then gives a typical point odds of about
    ``e`` between its nearest centre and one a mean squared distance
    further: soft enough for the I-Con loss to move, firm enough to keep
    the centres' partition. One when every point sits on a centre.
    """
    temperature = float(squared.min(1).mean())
    return temperature if temperature > 0 else 1.0


def soft_kmeans_linear(centres, mean, scale, temperature):
    """Weight and bias of the linear map of standardised inputs whose softmax is a soft k-means assignment.

    ``-|x - c_k|^2 / s = (2 x . c_k - |c_k|^2) / s - |x|^2 / s``, and the last
    term is the same for every cluster, so ``softmax(-|x - c|^2 / s)`` is the
    softmax of a linear function of ``x``; with ``x = mean + scale * z`` it
    is linear in the standardised ``z`` too.

    Parameters
    ----------
    centres : ndarray of shape (n_clusters, n_features)
        Centres in input space.
    mean, scale : ndarray of shape (n_features,)
        The standardisation ``z = (x - mean) / scale``.
    temperature : float
        ``s``.

    Returns
    -------
    weight : ndarray of shape (n_clusters, n_features)
    bias : ndarray of shape (n_clusters,)
    """
    weight = 2.0 * centres * scale[None, :] / temperature
    bias = (2.0 * centres @ mean - (centres * centres).sum(1)) / temperature
    return weight, bias

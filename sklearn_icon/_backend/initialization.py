"""Starting points: principal axes, PCA starts of a table, t-SNE's step-size rules."""

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

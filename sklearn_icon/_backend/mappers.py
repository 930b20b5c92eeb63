"""Mappers f: the functions whose outputs the learned kernel compares.

``table`` is a free vector per training sample (non-parametric, as in
t-SNE): the embedding tensor itself is optimised, so it needs no module.
``linear``, ``mlp`` and ``orthonormal`` (a linear projection with
orthonormal columns, PCA's mapper) are functions of the input, so they embed
new points too. All parameters are initialised from a local ``torch.Generator``;
torch's global seed is never touched.
"""

import math

import torch
from torch import nn

MAPPERS = ("table", "linear", "mlp", "orthonormal")


def _uniform_(tensor, bound, generator):
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


def _linear_layer(n_in, n_out, generator, dtype, device):
    """``nn.Linear`` with PyTorch's default initialisation, drawn from ``generator``."""
    layer = nn.Linear(n_in, n_out, dtype=dtype, device=device)
    bound = 1.0 / math.sqrt(n_in)
    _uniform_(layer.weight, bound, generator)
    _uniform_(layer.bias, bound, generator)
    return layer


def make_mapper(
    name,
    *,
    n_features,
    n_components,
    projection=None,
    hidden_layer_sizes=(100,),
    generator=None,
    dtype=torch.float32,
    device="cpu",
):
    """Build a parametric mapper module.

    Parameters
    ----------
    name : {"linear", "mlp", "orthonormal"}
    n_features : int
        Input dimension.
    n_components : int
        Output dimension.
    projection : torch.Tensor of shape (n_features, n_components), optional
        Initial weight of the ``linear`` or ``orthonormal`` mapper (e.g. the
        principal axes); random when None.
    hidden_layer_sizes : tuple of int, default=(100,)
        Widths of the hidden ReLU layers of ``mlp``.
    generator : torch.Generator, optional
        Source of the random initialisation.
    dtype : torch.dtype, default=torch.float32
    device : str or torch.device, default="cpu"

    Returns
    -------
    torch.nn.Module
        For ``orthonormal``, an ``nn.Linear`` without bias whose weight is
        parametrised to have orthonormal rows; :func:`finalize_mapper`
        freezes it into a plain layer once trained.
    """
    if name == "orthonormal":
        if n_components > n_features:
            raise ValueError(
                f"The orthonormal mapper projects onto n_components={n_components} orthonormal "
                f"directions, which needs n_components <= n_features={n_features}."
            )
        layer = nn.Linear(n_features, n_components, bias=False, dtype=dtype, device=device)
        if projection is None:
            _uniform_(layer.weight, 1.0 / math.sqrt(n_features), generator)
        else:
            with torch.no_grad():
                layer.weight.copy_(projection.T)
        return nn.utils.parametrizations.orthogonal(layer)
    if name == "linear":
        layer = _linear_layer(n_features, n_components, generator, dtype, device)
        if projection is not None:
            with torch.no_grad():
                layer.weight.copy_(projection.T)
                layer.bias.zero_()
        return layer
    if name == "mlp":
        widths = (n_features, *hidden_layer_sizes, n_components)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(_linear_layer(n_in, n_out, generator, dtype, device))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    if name == "table":
        raise ValueError("The table mapper is the embedding tensor itself; optimise it directly.")
    raise ValueError(f"Unknown mapper {name!r}; expected one of {MAPPERS}.")


def finalize_mapper(module):
    """A trained mapper without parametrizations: a plain module that pickles.

    ``torch.nn.utils.parametrize`` swaps the module's class for a generated
    one that :mod:`pickle` cannot find; the orthonormal weight is kept as
    it was last computed.
    """
    for submodule in module.modules():
        if nn.utils.parametrize.is_parametrized(submodule):
            for name in list(submodule.parametrizations):
                nn.utils.parametrize.remove_parametrizations(submodule, name, leave_parametrized=True)
    return module


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

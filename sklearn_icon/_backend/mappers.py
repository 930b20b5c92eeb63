"""Mappers f: the functions whose outputs the learned kernel compares.

``table`` is a free vector per training sample (non-parametric, as in
t-SNE): the embedding tensor itself is optimised, so it needs no module.
``linear``, ``mlp`` and ``orthonormal`` (a linear projection with
orthonormal columns, PCA's mapper) are functions of the input, so they embed
new points too; a user's module factory is one more (:func:`build_user_module`).
The clustering's ``table`` is :class:`FreeLogits`, a module of free logits.
All parameters are initialised from a local ``torch.Generator``; torch's
global seed is never touched.
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
    # nn.Linear draws its default initialisation from torch's global
    # generator before the local one overwrites it: fork the global state
    # so that a fit leaves the caller's random stream as it was.
    with torch.random.fork_rng(devices=[]):
        return _build_mapper(
            name, n_features, n_components, projection, hidden_layer_sizes, generator, dtype, device
        )


def _build_mapper(name, n_features, n_components, projection, hidden_layer_sizes, generator, dtype, device):
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
        # The parametrization completes the weight to a square orthogonal
        # basis with torch's global generator: seed it from the local one
        # (make_mapper restores the global state afterwards).
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
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


def build_user_module(factory, n_features, n_outputs, generator):
    """A user's ``factory(n_features, n_outputs)`` module, initialised from ``generator``.

    Its parameters are drawn from torch's global generator, so it is called
    under a seed taken from the local one, inside ``fork_rng``: the same
    ``random_state`` gives the same module, and the caller's global random
    state is left as it was.

    Raises
    ------
    TypeError
        If the factory does not return a :class:`torch.nn.Module`.
    """
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = factory(n_features, n_outputs)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"mapper(n_features, n_outputs) must return a torch.nn.Module; got {type(module).__name__}.")
    return module


class FreeLogits(torch.nn.Module):
    """Free cluster logits per training point: the ``table`` mapper."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, X=None):
        return self.logits

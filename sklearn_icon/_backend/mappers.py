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
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

MAPPERS = ("table", "linear", "mlp", "orthonormal")


def _uniform_(tensor, bound, generator):
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


class SparseRows:
    """Sparse input rows in CSR form, which :class:`RowsLinear` multiplies without densifying them.

    A mapper's first layer multiplies them as CSR, forward and backward in
    ``O(nnz * n_out)``: torch's autograd through a sparse COO product took
    tens of milliseconds per mini-batch of TF-IDF rows on a CPU.

    Parameters
    ----------
    indptr : torch.Tensor of shape (n_rows + 1,), int64
    indices : torch.Tensor of shape (nnz,), int64
        Column of each stored value.
    values : torch.Tensor of shape (nnz,)
    n_columns : int
    """

    def __init__(self, indptr, indices, values, n_columns):
        self.indptr, self.indices, self.values, self.n_columns = indptr, indices, values, n_columns

    @classmethod
    def from_scipy(cls, X, dtype=torch.float64, device="cpu"):
        """The rows of a scipy sparse matrix (any format), sorted per row as CSR keeps them."""
        X = X.tocsr()
        return cls(
            torch.as_tensor(X.indptr.astype(np.int64), device=device),
            torch.as_tensor(X.indices.astype(np.int64), device=device),
            torch.as_tensor(X.data, device=device).to(dtype),
            X.shape[1],
        )

    @property
    def shape(self):
        return (self.indptr.numel() - 1, self.n_columns)

    @property
    def dtype(self):
        return self.values.dtype

    def to(self, *args, **kwargs):
        """Values converted as ``torch.Tensor.to`` converts; the index arrays moved to the same device."""
        values = self.values.to(*args, **kwargs)
        return SparseRows(self.indptr.to(values.device), self.indices.to(values.device), values, self.n_columns)

    def index_select(self, dim, index):
        """The rows ``index`` (``dim`` must be 0), in that order."""
        if dim != 0:
            raise ValueError("SparseRows selects rows only (dim=0).")
        starts = self.indptr[index]
        counts = self.indptr[index + 1] - starts
        indptr = torch.zeros(index.numel() + 1, dtype=torch.int64, device=starts.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        positions = torch.repeat_interleave(starts - indptr[:-1], counts) + torch.arange(
            int(indptr[-1]), device=starts.device
        )
        return SparseRows(indptr, self.indices[positions], self.values[positions], self.n_columns)

    def linear(self, weight, bias=None):
        """``X @ weight.T + bias``, differentiable in ``weight`` and ``bias``."""
        out = _SparseRowsProduct.apply(self, weight)
        return out if bias is None else out + bias

    def _torch_csr(self):
        with warnings.catch_warnings():
            # "Sparse CSR tensor support is in beta state": the product is all that is used of it.
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            return torch.sparse_csr_tensor(self.indptr, self.indices, self.values, self.shape, check_invariants=False)

    def transposed_product(self, grad):
        """``X.T @ grad`` of shape (n_columns, grad.shape[1]), never transposing ``X`` itself.

        On the CPU, scipy's product over the CSR arrays read as CSC (no
        copy); elsewhere one scatter-add of the rows' contributions.
        """
        if grad.device.type == "cpu":
            csr = sp.csr_matrix((self.values.numpy(), self.indices.numpy(), self.indptr.numpy()), shape=self.shape)
            return torch.from_numpy(np.ascontiguousarray(csr.T @ grad.numpy()))
        counts = self.indptr[1:] - self.indptr[:-1]
        rows = torch.repeat_interleave(torch.arange(counts.numel(), device=grad.device), counts)
        out = torch.zeros((self.n_columns, grad.shape[1]), dtype=grad.dtype, device=grad.device)
        return out.index_add_(0, self.indices, grad[rows] * self.values[:, None])


class _SparseRowsProduct(torch.autograd.Function):
    """``rows @ weight.T`` for :class:`SparseRows`: torch's CSR product forward, :meth:`SparseRows.transposed_product`
    backward (torch's own backward transposes the CSR matrix, ~60x the product's time on a CPU)."""

    @staticmethod
    def forward(ctx, rows, weight):
        ctx.rows = rows
        return torch.sparse.mm(rows._torch_csr(), weight.T.contiguous())

    @staticmethod
    def backward(ctx, grad):
        return None, ctx.rows.transposed_product(grad.contiguous()).T.to(grad.dtype)


class RowsLinear(nn.Linear):
    """``nn.Linear`` that also takes :class:`SparseRows` (a mapper's first layer on sparse features)."""

    def forward(self, input):
        if isinstance(input, SparseRows):
            return input.linear(self.weight, self.bias)
        return super().forward(input)


def _linear_layer(n_in, n_out, generator, dtype, device):
    """``nn.Linear`` (taking :class:`SparseRows` too) with PyTorch's default initialisation, drawn from ``generator``."""
    layer = RowsLinear(n_in, n_out, dtype=dtype, device=device)
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

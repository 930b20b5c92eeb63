"""I-Con between points and class prototypes: supervised classification.

The supervisory distribution is over classes, ``p(c|i) = 1`` for the class of
point ``i`` (debiased by ``alpha``: label smoothing); the learned one compares
the point's features ``f(x_i)`` with one learned prototype per class:

``softmax``
    ``q(c|i) ∝ exp(f(x_i) · w_c + b_c)``: cross-entropy (Theorem 9); with the
    identity as ``f`` this is multinomial logistic regression.
``cosine``
    ``q(c|i) ∝ exp(cos(f(x_i), w_c) / temperature)``: a normalised softmax.
``harmonic``
    ``q(c|i) ∝ ||f(x_i) - w_c||^(-exponent)``: the harmonic loss of Baek et
    al. (2025), the Student-t limit of Theorem 10 (which writes it as
    ``(||f - w||^2)^(-n)``, i.e. ``exponent = 2 n``).

Everything is in log space; the loss is the (weighted) mean over points of
``KL(p(.|i) || q(.|i))``.
"""

import torch
from torch import nn

from ..divergence import mix_uniform
from ..mappers import make_mapper

PROTOTYPE_KERNELS = ("softmax", "cosine", "harmonic")


def prototype_logits(features, prototypes, bias=None, *, kernel, temperature=0.1, exponent=2.0):
    """Unnormalised log kernel between every point and every prototype.

    Parameters
    ----------
    features : torch.Tensor of shape (n, d)
    prototypes : torch.Tensor of shape (n_classes, d)
    bias : torch.Tensor of shape (n_classes,), optional
        Added to the ``softmax`` logits (the intercepts).
    kernel : {"softmax", "cosine", "harmonic"}
    temperature : float, default=0.1
        Of the ``cosine`` kernel.
    exponent : float, default=2.0
        Power of the distance in the ``harmonic`` kernel.

    Returns
    -------
    torch.Tensor of shape (n, n_classes)
    """
    if kernel == "softmax":
        logits = features @ prototypes.T
        return logits if bias is None else logits + bias
    if kernel == "cosine":
        unit_features = nn.functional.normalize(features, dim=1)
        unit_prototypes = nn.functional.normalize(prototypes, dim=1)
        return unit_features @ unit_prototypes.T / temperature
    if kernel == "harmonic":
        squared = (
            (features * features).sum(1, keepdim=True)
            - 2.0 * features @ prototypes.T
            + (prototypes * prototypes).sum(1)
        ).clamp_min(0.0)
        # The floor keeps a point on its prototype finite (its probability
        # is then one, the kernel's limit) and sits above the rounding error
        # of the expansion above, which would otherwise decide q there.
        floor = torch.finfo(features.dtype).eps ** 0.5
        return -0.5 * exponent * torch.log(squared + floor)
    raise ValueError(f"Unknown prototype kernel {kernel!r}; expected one of {PROTOTYPE_KERNELS}.")


def debias_log_q(log_q, alpha_q):
    """``log((1 - alpha_q) q + alpha_q / n_classes)`` computed in log space."""
    return mix_uniform(log_q, alpha_q, 1.0 / log_q.shape[1])


class PrototypeClassifier(nn.Module):
    """Features ``f(x)`` compared with one learned prototype per class.

    Parameters
    ----------
    body : torch.nn.Module
        The mapper ``f``; ``nn.Identity`` for the linear case (a linear map
        followed by dot products is itself linear, so the prototypes then
        live in input space).
    prototypes : torch.Tensor of shape (n_classes, d)
        Initial prototypes.
    kernel : {"softmax", "cosine", "harmonic"}
    temperature, exponent : float
        Kernel parameters (see :func:`prototype_logits`).
    alpha_q : float in [0, 1), default=0.0
        Debiasing of ``q``.
    """

    def __init__(self, body, prototypes, *, kernel, temperature=0.1, exponent=2.0, alpha_q=0.0):
        super().__init__()
        if kernel not in PROTOTYPE_KERNELS:
            raise ValueError(f"Unknown prototype kernel {kernel!r}; expected one of {PROTOTYPE_KERNELS}.")
        self.body = body
        self.prototypes = nn.Parameter(prototypes.clone())
        self.bias = nn.Parameter(torch.zeros_like(prototypes[:, 0])) if kernel == "softmax" else None
        self.kernel, self.temperature, self.exponent, self.alpha_q = kernel, temperature, exponent, alpha_q

    def forward(self, X):
        """Log-probabilities ``log q(c|i)`` of shape (n, n_classes)."""
        logits = prototype_logits(
            self.body(X),
            self.prototypes,
            self.bias,
            kernel=self.kernel,
            temperature=self.temperature,
            exponent=self.exponent,
        )
        return debias_log_q(torch.log_softmax(logits, dim=1), self.alpha_q)

    def penalized_weights(self):
        """Tensors under the L2 penalty: for ``softmax``, the body's weight
        matrices and the prototypes.

        With two classes a softmax depends only on the difference of its
        prototypes, so that difference is what is penalised: the model is
        then exactly (binary) logistic regression with the same penalty.
        ``cosine`` and ``harmonic`` are unchanged when the features and the
        prototypes are scaled together, so a penalty on weights could only
        shrink that scale towards the kernels' numerical floors; they get
        none.
        """
        if self.kernel != "softmax":
            if isinstance(self.body, nn.Linear):
                # An affine body starts at the identity and is pulled back
                # towards it, which leaves its scale alone.
                identity = torch.eye(*self.body.weight.shape, dtype=self.body.weight.dtype, device=self.body.weight.device)
                return [self.body.weight - identity]
            return []
        weights = [p for name, p in self.body.named_parameters() if name.endswith("weight")]
        weights.append(self.prototypes if len(self.prototypes) > 2 else self.prototypes[1] - self.prototypes[0])
        return weights

    def penalty(self):
        """``sum ||W||^2 / 2`` over :meth:`penalized_weights`."""
        total = self.prototypes.new_zeros(())
        for weight in self.penalized_weights():
            total = total + 0.5 * (weight * weight).sum()
        return total


def build_prototype_classifier(
    inputs,
    class_index,
    weight,
    n_classes,
    generator,
    *,
    mapper,
    hidden_layer_sizes=(100,),
    kernel="softmax",
    temperature=0.1,
    exponent=2.0,
    alpha_q=0.0,
):
    """A :class:`PrototypeClassifier` at its starting point.

    The ``linear`` softmax model starts where ``LogisticRegression`` does
    (identity features, zero prototypes); an ``mlp`` body starts at
    PyTorch's initialisation drawn from ``generator``; the ``cosine`` and
    ``harmonic`` kernels start each prototype at its class's (weighted)
    mean feature vector, where their gradients are informative.

    Parameters
    ----------
    inputs : torch.Tensor of shape (n, n_features)
        Standardised training input.
    class_index : torch.Tensor of shape (n,)
    weight : torch.Tensor of shape (n,)
        Sample weights.
    n_classes : int
    generator : torch.Generator
    mapper : {"linear", "mlp"}
    hidden_layer_sizes : tuple of int, default=(100,)
    kernel, temperature, exponent, alpha_q
        See :class:`PrototypeClassifier`.

    Returns
    -------
    PrototypeClassifier
    """
    dtype, device = inputs.dtype, inputs.device
    n_features = inputs.shape[1]
    if mapper == "linear" and kernel == "softmax":
        body = torch.nn.Identity()
        width = n_features
    elif mapper == "linear":
        # Normalisation and distances do not absorb a linear map into the
        # prototypes: learn an affine map, starting from the identity.
        with torch.random.fork_rng(devices=[]):  # its default init, overwritten below, is global
            body = torch.nn.Linear(n_features, n_features, dtype=dtype, device=device)
        with torch.no_grad():
            body.weight.copy_(torch.eye(n_features, dtype=dtype))
            body.bias.zero_()
        width = n_features
    else:
        sizes = tuple(hidden_layer_sizes)
        body = torch.nn.Sequential(
            make_mapper(
                "mlp",
                n_features=n_features,
                n_components=sizes[-1],
                hidden_layer_sizes=sizes[:-1],
                generator=generator,
                dtype=dtype,
            ),
            torch.nn.ReLU(),
        ).to(device)
        width = sizes[-1]
    if kernel == "softmax":
        if mapper == "linear":
            # The convex case starts where LogisticRegression does.
            prototypes = torch.zeros((n_classes, width), dtype=dtype)
        else:
            bound = width**-0.5
            prototypes = (torch.rand((n_classes, width), generator=generator, dtype=dtype) * 2 - 1) * bound
        prototypes = prototypes.to(device)
    else:
        # Distance and angle kernels start each prototype at its class's
        # mean feature vector, where their gradients are informative.
        with torch.no_grad():
            features = body(inputs)
            one_hot = torch.nn.functional.one_hot(class_index, n_classes).to(dtype) * weight[:, None]
            prototypes = (one_hot.T @ features) / one_hot.sum(0).clamp_min(1e-12)[:, None]
    return PrototypeClassifier(
        body,
        prototypes,
        kernel=kernel,
        temperature=temperature,
        exponent=exponent,
        alpha_q=alpha_q,
    )

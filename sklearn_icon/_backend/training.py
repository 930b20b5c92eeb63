"""How each kind of model is trained: the steps and schedules handed to :mod:`.optim`.

One function per way a fit learns, each a few lines over
:func:`~sklearn_icon._backend.optim.first_order` or
:func:`~sklearn_icon._backend.optim.lbfgs`: a free table by t-SNE's gradient
descent, a mapper by Adam on the exact loss or on sampled mini-batches
(possibly sharded over processes), cluster assignments on the exact or the
sampled cluster loss, and class prototypes by L-BFGS or mini-batch Adam.
"""

import math

import numpy as np
import torch

from .optim import (
    TABLE_DIVERGENCE_HINT,
    DivergedError,
    Phase,
    StoppingRules,
    first_order,
    loss_with_gradient,
)


def exaggeration_phases(early_exaggeration, early_exaggeration_iter, max_iter, early=None, late=None):
    """The two phases of a neighbour embedding: exaggerated and unmonitored, then plain.

    ``early`` and ``late`` set further fields of each phase (``learning_rate``,
    ``momentum``), see :func:`train_table`.
    """
    return [
        Phase(early_exaggeration_iter, exaggeration=early_exaggeration, monitored=False, **(early or {})),
        Phase(max_iter, **(late or {})),
    ]


def train_table(
    objective,
    Y,
    *,
    max_iter=1000,
    learning_rate=200.0,
    late_learning_rate=None,
    early_exaggeration=12.0,
    early_exaggeration_iter=250,
    momentum=(0.5, 0.8),
    min_gain=0.01,
    min_grad_norm=1e-7,
    n_iter_without_progress=300,
    verbose=0,
    prefix="IConEmbedding",
):
    """t-SNE's optimiser on a free table of embeddings: momentum, gains, early exaggeration.

    With ``verbose`` it reports as scikit-learn's ``TSNE`` does: the KL
    divergence after early exaggeration (of the exaggerated ``p``,
    ``a (KL + log a)`` for exaggeration ``a``, TSNE's number) and after the
    last iteration; from ``verbose=2`` a line every 50 iterations.

    The schedule follows scikit-learn's ``TSNE``: ``early_exaggeration_iter``
    iterations with exaggerated ``p`` and the first momentum, then the plain
    loss with the second momentum and ``late_learning_rate``, gains and
    velocity reset between the phases. The second phase stops early when
    the gradient norm falls to ``min_grad_norm`` or the loss has not
    improved for more than ``n_iter_without_progress`` iterations.

    Parameters
    ----------
    objective : callable
        ``objective(Y, exaggeration, compute_loss) -> (loss, grad)`` with a
        ``loss(Y)`` method.
    Y : torch.Tensor of shape (n, n_components)
        Initial embedding; not modified.
    max_iter, learning_rate, late_learning_rate, early_exaggeration, early_exaggeration_iter
        The schedule; ``late_learning_rate`` defaults to ``learning_rate``.
    momentum : tuple of float, default=(0.5, 0.8)
        Momentum of the two phases.
    min_gain, min_grad_norm, n_iter_without_progress : float, float, int
        scikit-learn's gain floor and stopping rules.
    verbose : int, default=0
    prefix : str, default="IConEmbedding"

    Returns
    -------
    Y : torch.Tensor
        Final embedding.
    result : OptimResult
        Losses (without exaggeration) at every checkpoint, then that of ``Y``.
    """
    table = Y.detach().clone().requires_grad_(True)
    phases = exaggeration_phases(
        early_exaggeration,
        early_exaggeration_iter,
        max_iter,
        early=dict(
            momentum=momentum[0],
            learning_rate=learning_rate,
            summary=" with early exaggeration",
            reported=lambda kl: early_exaggeration * (kl + math.log(early_exaggeration)),
        ),
        late=dict(momentum=momentum[1], learning_rate=learning_rate if late_learning_rate is None else late_learning_rate),
    )

    return _descend_table(
        objective,
        table,
        phases=phases,
        max_iter=max_iter,
        learning_rate=learning_rate,
        min_gain=min_gain,
        stopping=StoppingRules.from_iterations(n_iter_without_progress, min_grad_norm),
        verbose=verbose,
        prefix=prefix,
    )


def _descend_table(objective, table, *, phases, max_iter, learning_rate, verbose, prefix, min_gain=0.01, stopping=None):
    """t-SNE's gradient descent (gains rule) of a leaf ``table`` on a closed-form objective, checked finite."""

    def step(exaggeration, checkpoint):
        return loss_with_gradient(objective, table, exaggeration, checkpoint)

    result = first_order(
        [table],
        step,
        max_iter=max_iter,
        learning_rate=learning_rate,
        rule="gains",
        phases=phases,
        min_gain=min_gain,
        stopping=stopping,
        final_loss=lambda: objective.loss(table.detach()),
        verbose=verbose,
        detail=2,
        prefix=prefix,
        loss_name="KL divergence",
        hint=TABLE_DIVERGENCE_HINT,
    )
    Y = table.detach()
    if not bool(torch.isfinite(Y).all()):
        raise DivergedError(f"The embedding became non-finite. Likely causes: {TABLE_DIVERGENCE_HINT}.")
    return Y, result


def train_placement(objective, Y, *, n_iter=250, learning_rate=0.05, momentum=0.8, exaggeration=1.0, verbose=0):
    """Place new points into a fixed embedding: t-SNE's gradient descent on their rows alone.

    openTSNE's ``transform`` schedule: a fixed number of iterations at one
    momentum, with no stopping rule, so that every point takes the same
    steps whatever other points are placed with it (the update is
    element-wise, and :class:`~.objectives.placement.PlacementObjective`
    couples no two points).

    Parameters
    ----------
    objective : PlacementObjective
    Y : torch.Tensor of shape (m, n_components)
        Initial positions; not modified.
    n_iter : int, default=250
    learning_rate : float, default=0.05
    momentum : float, default=0.8
    exaggeration : float, default=1.0
        Factor on the attraction throughout.
    verbose : int, default=0

    Returns
    -------
    Y : torch.Tensor
        The placed points.
    result : OptimResult
    """
    return _descend_table(
        objective,
        Y.detach().clone().requires_grad_(True),
        phases=[Phase(n_iter, exaggeration=exaggeration, momentum=momentum)],
        max_iter=n_iter,
        learning_rate=learning_rate,
        verbose=verbose,
        prefix="IConEmbedding.transform",
    )


def train_mapper(
    mapper,
    X,
    objective,
    *,
    max_iter=1000,
    learning_rate=1e-3,
    early_exaggeration=12.0,
    early_exaggeration_iter=250,
    augment=None,
    verbose=0,
    prefix="IConEmbedding",
):
    """Full-batch Adam on a parametric mapper's weights, through the objective's gradient.

    Parameters
    ----------
    mapper : torch.nn.Module
        Trained in place.
    X : torch.Tensor of shape (n, n_features)
    objective : callable
        A closed-form or autograd objective (see :func:`train_table`).
    augment : callable, optional
        ``augment(None) -> X'``, a fresh augmentation of all of ``X`` each
        iteration (one epoch of the full batch); ``p`` stays that of ``X``
        and the final loss is that of the un-augmented ``X``.

    Returns
    -------
    OptimResult
    """

    def step(exaggeration, checkpoint):
        return loss_with_gradient(objective, mapper(X if augment is None else augment(None)), exaggeration, checkpoint)

    def final_loss():
        with torch.no_grad():
            return objective.loss(mapper(X))

    return first_order(
        list(mapper.parameters()),
        step,
        max_iter=max_iter,
        learning_rate=learning_rate,
        phases=exaggeration_phases(early_exaggeration, early_exaggeration_iter, max_iter),
        final_loss=final_loss,
        verbose=verbose,
        prefix=prefix,
    )


def train_sampled(
    mapper,
    X,
    sampler,
    loss,
    *,
    batch_size,
    generator,
    max_iter=1000,
    learning_rate=1e-3,
    early_exaggeration=12.0,
    early_exaggeration_iter=250,
    augment=None,
    shard=None,
    verbose=0,
    prefix="IConEmbedding",
):
    """Adam on a parametric mapper, one sampled batch of anchors and neighbors per step.

    Parameters
    ----------
    mapper : torch.nn.Module
        Trained in place.
    X : torch.Tensor of shape (n, n_features)
        Standardised input, on the training device.
    sampler : WalkSampler
        Draws ``j ~ p(.|i)`` (on the CPU).
    loss : SampledNeighborLoss
    batch_size : int
        Anchors per step; each brings one neighbor, so ``q`` is normalised
        over ``2 batch_size - 1`` points.
    generator : torch.Generator
        CPU source of the batches.
    augment : callable, optional
        ``augment(rows) -> inputs``: fresh augmented, standardised inputs of
        those rows, used instead of ``X[rows]``.
    shard : ProcessGroupShard, optional
        Train data-parallel: this process embeds its share of each global
        batch of ``batch_size`` anchors.

    Returns
    -------
    OptimResult
        Losses are the mean batch loss since the previous checkpoint.
    """
    n = X.shape[0]
    anchor_index = torch.arange(batch_size, device=X.device)
    neighbor_index = anchor_index + batch_size

    def step(exaggeration, checkpoint):
        anchors = torch.randint(n, (batch_size,), generator=generator)
        neighbors = sampler.step(anchors, generator)
        rows = (torch.cat([anchors, neighbors]) if shard is None else shard.rows(anchors, neighbors)).to(X.device)
        inputs = X[rows] if augment is None else augment(rows)
        if shard is not None:
            return shard.loss(mapper, inputs, loss, exaggeration, batch_size)
        Y = mapper(inputs)
        return loss(Y[:batch_size], Y, anchor_index, neighbor_index, exaggeration)

    return first_order(
        list(mapper.parameters()),
        step,
        max_iter=max_iter,
        learning_rate=learning_rate,
        phases=exaggeration_phases(early_exaggeration, early_exaggeration_iter, max_iter),
        average=True,
        shard=shard,
        verbose=verbose,
        prefix=prefix,
    )


def train_assignments(
    model, objective, *, max_iter, learning_rate, weight_decay, tol=0.0, resume=None, verbose=0, prefix=""
):
    """AdamW on a cluster model's weights, one step of a cluster objective at a time.

    Parameters
    ----------
    model : torch.nn.Module
        Maps the objective's inputs to cluster logits; trained in place.
    objective : object
        ``objective.step(model)``: the loss of one step (the exact loss, or
        one sampled batch's); ``objective.final(model)``: the loss the
        restarts are compared on; ``objective.check_every``: iterations
        between convergence checks; ``objective.noisy``: whether a step's
        loss is an estimate (a checkpoint then averages the steps since
        the last one).
    tol : float, default=0.0
        Converged at the first checkpoint whose loss is not below the best
        so far by ``tol`` times its size (0: run ``max_iter`` steps).
    resume : object, optional
        The ``state`` of an earlier result of this model: training carries
        on with its optimiser state for ``max_iter`` more steps.

    Returns
    -------
    OptimResult
        Its last loss is ``objective.final(model)`` after training.
    """
    return first_order(
        list(model.parameters()),
        lambda exaggeration, checkpoint: objective.step(model),
        max_iter=max_iter,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        check_every=objective.check_every,
        average=objective.noisy,
        stopping=StoppingRules(tol=tol, patience=objective.patience, relative=True) if tol > 0 else None,
        final_loss=lambda: objective.final(model),
        resume=resume,
        verbose=verbose,
        prefix=prefix,
    )


def train_restarts(make_model, objective, *, n_init, max_iter, screen, keep, prefix="", **train):
    """Restarts of :func:`train_assignments`, screened: all run ``screen`` steps, the ``keep`` best run on.

    Every restart runs ``screen`` steps (fewer if it converges); the
    ``keep`` of lowest loss then carry on, with their optimiser state, to
    convergence or ``max_iter`` steps in all, and the lowest final loss
    wins. ``screen = max_iter`` runs every restart to the end.

    Parameters
    ----------
    make_model : callable
        ``make_model(restart) -> torch.nn.Module``, the start of a restart.
    objective : object
        As for :func:`train_assignments`.
    n_init, max_iter, screen, keep : int
    prefix : str
        Start of the progress lines; the restart's number is appended.
    **train
        ``learning_rate``, ``weight_decay``, ``tol`` and ``verbose`` of
        :func:`train_assignments`.

    Returns
    -------
    result : OptimResult
        The kept restart's, its losses and ``n_iter`` over both stretches.
    model : torch.nn.Module
        The kept restart's trained model.
    """
    screened = []
    for restart in range(n_init):
        model = make_model(restart)
        result = train_assignments(model, objective, max_iter=screen, prefix=f"{prefix} restart {restart}", **train)
        screened.append((result.losses[-1], restart, result, model))
    best = None
    for _, restart, result, model in sorted(screened, key=lambda entry: entry[:2])[:keep]:
        if not result.converged and screen < max_iter:
            first = result
            result = train_assignments(
                model, objective, max_iter=max_iter - screen, resume=first.state,
                prefix=f"{prefix} restart {restart}, kept", **train,
            )
            result.losses = first.losses[:-1] + result.losses
            result.n_iter += first.n_iter
        if best is None or result.losses[-1] < best[0].losses[-1]:
            best = (result, model)
    return best


class ShuffledBatches:
    """Epochs over a fresh random order of ``n_samples``: the batch source of mini-batch Adam.

    Called once per optimiser step with the step's objective; its
    ``weight`` is the size of the last batch, so the loop's epoch loss is
    the size-weighted mean of the batch losses.

    Parameters
    ----------
    batch_objective : callable
        ``batch_objective(index) -> scalar tensor`` for a tensor of sample indices.
    n_samples, batch_size : int
        A single batch (no shuffling) when ``batch_size >= n_samples``.
    generator : torch.Generator, optional
    device : torch.device or str
    """

    def __init__(self, batch_objective, n_samples, batch_size, generator=None, device="cpu"):
        self.batch_objective, self.n, self.batch_size = batch_objective, n_samples, min(batch_size, n_samples)
        self.generator, self.device = generator, device
        self.steps_per_epoch = math.ceil(n_samples / self.batch_size)
        self._position, self.weight = 0, 0

    def __call__(self, exaggeration, checkpoint):
        if self._position == 0:
            if self.batch_size >= self.n:
                self._order = torch.arange(self.n, device=self.device)
            else:
                self._order = torch.randperm(self.n, generator=self.generator).to(self.device)
        start = self._position * self.batch_size
        index = self._order[start : start + self.batch_size]
        self._position = (self._position + 1) % self.steps_per_epoch
        self.weight = index.numel()
        return self.batch_objective(index)


def train_minibatch(
    parameters,
    batch_objective,
    n_samples,
    *,
    batch_size,
    max_iter=200,
    learning_rate=1e-3,
    tol=1e-4,
    n_iter_no_change=10,
    generator=None,
    device="cpu",
    verbose=0,
    prefix="IConClassifier",
):
    """Adam over shuffled mini-batches, stopped as scikit-learn's MLPs stop.

    An epoch's loss is the size-weighted mean of its batch losses; training
    ends when it has not improved by ``tol`` for ``n_iter_no_change``
    consecutive epochs, or after ``max_iter`` epochs.

    Returns
    -------
    OptimResult
        ``n_iter`` counts epochs; ``losses`` holds each epoch's loss.
    """
    batches = ShuffledBatches(batch_objective, n_samples, batch_size, generator, device)
    return first_order(
        list(parameters),
        batches,
        max_iter=max_iter,
        learning_rate=learning_rate,
        steps_per_iter=batches.steps_per_epoch,
        check_every=1,
        average=True,
        stopping=StoppingRules(tol=tol, patience=n_iter_no_change),
        verbose=verbose,
        prefix=prefix,
    )


def standardized_augmentation(augment, X, mean, scale, generator, device, dtype):
    """A user's ``augment(X, generator)`` on the raw input, then the mapper's standardisation.

    Parameters
    ----------
    augment : callable
        ``augment(rows, generator) -> rows'`` on raw float rows.
    X : ndarray of shape (n, n_features)
        The raw training input.
    mean, scale : ndarray of shape (n_features,)
        The mapper's standardisation.
    generator : torch.Generator
        Seeds the generator on ``device`` that ``augment`` receives.
    device : torch.device
    dtype : torch.dtype

    Returns
    -------
    callable
        ``augmented(index)``: fresh standardised views of the rows ``index``
        (None: all of them).
    """
    raw = torch.tensor(np.asarray(X), dtype=dtype, device=device)
    mean = torch.as_tensor(mean, dtype=dtype, device=device)
    scale = torch.as_tensor(scale, dtype=dtype, device=device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    device_generator = torch.Generator(device=device).manual_seed(seed)

    def augmented(index):
        batch = raw if index is None else raw[index]
        views = augment(batch.clone(), device_generator)
        if not isinstance(views, torch.Tensor) or views.shape != batch.shape:
            shape = getattr(views, "shape", type(views).__name__)
            raise ValueError(
                f"augment(X, generator) must return a tensor of the input's shape {tuple(batch.shape)}; got {shape}."
            )
        return (views.to(dtype) - mean) / scale

    return augmented

"""The optimiser: one first-order loop and one quasi-Newton loop serve every fit.

Every fit hands the loop a *step*, ``step(exaggeration, checkpoint)``,
that returns a scalar tensor: its value is the plain loss (needed only
when ``checkpoint`` is true) and its gradient, reached by ``backward``, is
the direction to train along (the exaggerated one during t-SNE's early
exaggeration). Closed-form objectives give their gradient through
:func:`loss_with_gradient`, autograd objectives are differentiated as they
are, so a closed-form gradient flows through any mapper.

The loop owns what every fit shares: building the optimiser (t-SNE's gains
and momentum for a free table, Adam/AdamW for parameters), the phases of
the schedule, checkpoints every ``check_every`` iterations, the
non-finite-loss check, the progress line, the stopping rules and the
result type.
"""

import math
import time
from dataclasses import dataclass, field

import torch

#: Iterations between host-side checks (progress, convergence, NaN).
N_ITER_CHECK = 50

#: What a non-finite loss under Adam most likely means, for DivergedError.
ADAM_DIVERGENCE_HINT = "a learning_rate too large for Adam, or input with extreme values"

#: The same for t-SNE's gradient descent on a free table.
TABLE_DIVERGENCE_HINT = "a learning_rate too large, or input with extreme values or scale"

#: The same for L-BFGS, whose line search leaves no step size to blame.
LBFGS_DIVERGENCE_HINT = "input with extreme values or a degenerate kernel (temperature or exponent)"


class DivergedError(FloatingPointError):
    """The loss became NaN or infinite during optimisation."""


def check_finite(loss, iteration, hint):
    """Raise :class:`DivergedError`, naming ``hint`` as the likely cause, if ``loss`` is not finite."""
    if not math.isfinite(loss):
        raise DivergedError(f"The loss became {loss} at iteration {iteration}. Likely causes: {hint}.")


def announce(verbose, prefix, message):
    """Print one ``[prefix] message`` line of progress when ``verbose`` is positive."""
    if verbose > 0:
        print(f"[{prefix}] {message}", flush=True)


def report(verbose, prefix, iteration, loss, seconds, grad_norm=None, n_iter=None):
    """The one progress line of every loop, in scikit-learn's ``TSNE`` wording, when ``verbose`` is positive.

    ``seconds`` is the time of the last ``n_iter`` iterations (of all of
    them when ``n_iter`` is None).
    """
    if verbose > 0:
        norm = "" if grad_norm is None else f", gradient norm = {grad_norm:.7f}"
        span = f"{iteration if n_iter is None else n_iter} iterations in {seconds:.3f}s"
        print(f"[{prefix}] Iteration {iteration}: error = {loss:.7f}{norm} ({span})", flush=True)


@dataclass
class OptimResult:
    """What every optimisation loop returns.

    Attributes
    ----------
    losses : list of float
        The loss at every checkpoint (or the mean step loss since the last
        one), then, when the loop was given one, the final loss.
    n_iter : int
        Iterations taken.
    converged : bool
        Whether a stopping rule ended the loop before ``max_iter``.
    state : object or None
        The first-order loop's update rule and stopping rules with their
        state (Adam's moments, t-SNE's gains, the best loss so far), to
        continue the same run with ``first_order(..., resume=state)``;
        None from L-BFGS.
    """

    losses: list
    n_iter: int
    converged: bool
    state: object = None


@dataclass
class Phase:
    """A stretch of iterations with one setting of the schedule.

    Parameters
    ----------
    n_iter : int
        Iterations in the phase.
    exaggeration : float, default=1.0
        Passed to the step (t-SNE's early exaggeration).
    learning_rate : float or None, default=None
        Step size of the phase; None keeps the loop's.
    momentum : float, default=0.0
        Momentum of the ``gains`` rule.
    monitored : bool, default=True
        Whether the stopping rules look at this phase.
    summary : str or None, default=None
        When set, the phase ends on a checkpoint and, with ``verbose``, a
        line ``"{loss_name} after {n} iterations{summary}: {loss}"``
        (t-SNE's ``" with early exaggeration"``).
    reported : callable or None, default=None
        ``reported(loss) -> float``: the number the progress lines show for
        this phase's loss (t-SNE reports its exaggerated objective during
        early exaggeration); None shows the loss. The recorded losses stay
        the plain ones.
    """

    n_iter: int
    exaggeration: float = 1.0
    learning_rate: float = None
    momentum: float = 0.0
    monitored: bool = True
    summary: str = None
    reported: object = None


@dataclass
class StoppingRules:
    """When the first-order loop stops before ``max_iter``, checked at every checkpoint.

    Parameters
    ----------
    tol : float, default=0.0
        A checkpoint's loss improves on the best so far when it is lower by
        more than ``tol``.
    patience : int or None, default=None
        Stop after this many checkpoints in a row without improvement (None:
        never). t-SNE's ``n_iter_without_progress`` is
        ``n_iter_without_progress // check_every + 1`` checkpoints, see
        :meth:`from_iterations`.
    min_grad_norm : float, default=0.0
        Stop when the gradient norm falls to this.
    relative : bool, default=False
        Measure the improvement against ``tol * |best loss|`` instead of
        ``tol``: a tolerance that does not depend on the loss's scale.
    """

    tol: float = 0.0
    patience: int = None
    min_grad_norm: float = 0.0
    relative: bool = False
    _best: float = field(default=math.inf, init=False, repr=False)
    _stale: int = field(default=0, init=False, repr=False)

    @classmethod
    def from_iterations(cls, n_iter_without_progress, min_grad_norm, check_every=N_ITER_CHECK):
        """scikit-learn's TSNE rules: no new best loss for more than ``n_iter_without_progress`` iterations."""
        return cls(patience=max(n_iter_without_progress // check_every + 1, 1), min_grad_norm=min_grad_norm)

    def stop(self, loss, grad_norm):
        """Whether to stop after a checkpoint with this loss and gradient norm."""
        margin = self.tol * abs(self._best) if self.relative and math.isfinite(self._best) else self.tol
        if loss < self._best - margin:
            self._stale = 0
        else:
            self._stale += 1
        self._best = min(self._best, loss)
        if self.patience is not None and self._stale >= self.patience:
            return True
        return grad_norm is not None and grad_norm <= self.min_grad_norm


class _GivenGradient(torch.autograd.Function):
    """A scalar whose value is given and whose gradient with respect to ``tensor`` is ``grad``."""

    @staticmethod
    def forward(ctx, tensor, value, grad):
        ctx.grad = grad
        return value

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.grad, None, None


def given_gradient(tensor, value, grad):
    """A scalar equal to ``value`` whose gradient with respect to ``tensor`` is ``grad``.

    How a gradient computed in closed form (or assembled across processes)
    enters autograd, so that ``backward`` carries it on through a mapper.
    """
    return _GivenGradient.apply(tensor, value, grad)


def loss_with_gradient(objective, Y, exaggeration=1.0, compute_loss=True):
    """A closed-form objective as a differentiable scalar of the embeddings ``Y``.

    Parameters
    ----------
    objective : callable
        ``objective(Y, exaggeration, compute_loss) -> (loss, grad)``, the
        protocol of every closed-form objective.
    Y : torch.Tensor of shape (n, n_components)
        Embeddings, the output of a mapper or a leaf table.
    exaggeration : float, default=1.0
    compute_loss : bool, default=True
        When False the value is ``nan`` and only the gradient is computed.

    Returns
    -------
    torch.Tensor
        Scalar; its value is the plain loss, its gradient the objective's.
    """
    loss, grad = objective(Y.detach(), exaggeration, compute_loss)
    value = torch.as_tensor(loss, dtype=Y.dtype, device=Y.device).detach().clone()
    return given_gradient(Y, value, grad)


class _Gains:
    """t-SNE's update of a free table: momentum and per-coordinate gains, reset at each phase."""

    def __init__(self, table, min_gain):
        self.table, self.min_gain = table, min_gain

    def start(self, phase):
        self.velocity = torch.zeros_like(self.table)
        self.gains = torch.ones_like(self.table)

    def step(self, phase, learning_rate):
        grad = self.table.grad
        same_direction = self.velocity * grad < 0
        self.gains = torch.where(same_direction, self.gains + 0.2, self.gains * 0.8).clamp_min_(self.min_gain)
        self.velocity.mul_(phase.momentum).sub_(learning_rate * self.gains * grad)
        with torch.no_grad():
            self.table += self.velocity


class _Adam:
    """Adam with decoupled weight decay (AdamW; plain Adam at zero decay) over the whole schedule."""

    def __init__(self, parameters, learning_rate, weight_decay):
        self.optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)

    def start(self, phase):
        if phase.learning_rate is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = phase.learning_rate

    def step(self, phase, learning_rate):
        self.optimizer.step()


def _gradient_norm(parameters):
    grads = [p.grad for p in parameters if p.grad is not None]
    if len(grads) == 1:
        return float(torch.linalg.vector_norm(grads[0]))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0


def first_order(
    parameters,
    step,
    *,
    max_iter,
    learning_rate,
    rule="adam",
    phases=None,
    weight_decay=0.0,
    min_gain=0.01,
    steps_per_iter=1,
    check_every=N_ITER_CHECK,
    average=False,
    stopping=None,
    final_loss=None,
    shard=None,
    resume=None,
    verbose=0,
    detail=1,
    prefix="sklearn_icon",
    loss_name="loss",
    hint=ADAM_DIVERGENCE_HINT,
):
    """Minimise by first-order steps: the loop every gradient-based fit goes through.

    Parameters
    ----------
    parameters : list of torch.Tensor
        Leaf tensors trained in place: a module's parameters, or the one
        table of embeddings for ``rule="gains"``.
    step : callable
        ``step(exaggeration, checkpoint)`` returns the scalar loss tensor of
        one optimiser step (see the module docstring); the loop calls its
        ``backward``.
    max_iter : int
        Iterations at most, over all phases.
    learning_rate : float
        Step size, unless a phase sets its own.
    rule : {"adam", "gains"}, default="adam"
        ``adam``: AdamW with ``weight_decay`` (Adam when 0); ``gains``:
        t-SNE's momentum and gains on one table, with velocity and gains
        reset at the start of each phase.
    phases : list of Phase, optional
        The schedule; one unmonitored phase may precede the rest (early
        exaggeration). Default: one phase of ``max_iter`` iterations.
    weight_decay : float, default=0.0
    min_gain : float, default=0.01
        Floor of the ``gains`` rule.
    steps_per_iter : int, default=1
        Optimiser steps per iteration (batches per epoch).
    check_every : int, default=N_ITER_CHECK
        Iterations between checkpoints; with ``average``, the last
        iteration is one too.
    average : bool, default=False
        Record at each checkpoint the mean step loss since the previous
        one (a step's weight its ``weight`` attribute, when it sets one)
        instead of the checkpoint step's loss.
    stopping : StoppingRules, optional
        Checked at every checkpoint of a monitored phase.
    final_loss : callable, optional
        ``final_loss() -> float``, appended to the losses at the end.
    shard : object, optional
        Data-parallel training: ``shard.reduce_gradients(parameters)`` runs
        after every backward pass, ``shard.total(value)`` sums a recorded
        loss over processes.
    resume : object, optional
        The ``state`` of an earlier result on the same parameters: its
        update rule (with its moments) and its stopping rules (with their
        best loss) carry on in place of new ones and of ``stopping``;
        ``max_iter`` counts the new iterations only.
    verbose : int, default=0
        Positive: print the phases' summaries and a last line
        ``"{loss_name} after {n} iterations: {final loss}"``; at least
        ``detail``: also a line at every checkpoint.
    detail : int, default=1
        Verbosity from which checkpoints are printed (t-SNE prints them
        from 2).
    prefix : str
        Name that starts each progress line.
    loss_name : str, default="loss"
        What the summaries call the loss (t-SNE's "KL divergence").
    hint : str
        The likely cause named when the loss becomes non-finite.

    Returns
    -------
    OptimResult
    """
    parameters = list(parameters)
    phases = phases or [Phase(max_iter)]
    if resume is not None:
        # The run carries on: its update rule's moments and its stopping rules' best loss.
        update, stopping = resume
    elif rule == "gains":
        update = _Gains(parameters[0], min_gain)
    else:
        update = _Adam(parameters, learning_rate, weight_decay)
    losses, it, converged = [], 0, False
    running, weight = 0.0, 0
    last_checkpoint = time.perf_counter()
    last_it = 0
    phase_end = 0
    for phase in phases:
        phase_end = min(phase_end + phase.n_iter, max_iter)
        step_size = learning_rate if phase.learning_rate is None else phase.learning_rate
        update.start(phase)
        shown = phase.reported or (lambda loss: loss)
        phase_start = it
        while it < phase_end and not converged:
            it += 1
            # An averaged window ends at the last iteration too, so that no
            # step goes unrecorded; a summarised phase ends on a checkpoint.
            checkpoint = (
                it % check_every == 0
                or (average and it == max_iter)
                or (phase.summary is not None and it == phase_end)
            )
            for _ in range(steps_per_iter):
                for parameter in parameters:
                    parameter.grad = None
                loss = step(phase.exaggeration, checkpoint)
                loss.backward()
                if shard is not None:
                    shard.reduce_gradients(parameters)
                update.step(phase, step_size)
                if average:
                    size = getattr(step, "weight", 1)
                    running, weight = running + loss.detach() * size, weight + size
            if not checkpoint:
                continue
            value = (running if average else loss.detach()) if shard is None else shard.total(running)
            value = float(value) / (weight if average else 1)
            running, weight = 0.0, 0
            check_finite(value, it, hint)
            losses.append(value)
            grad_norm = _gradient_norm(parameters) if rule == "gains" or verbose else None
            now = time.perf_counter()
            report(verbose >= detail, prefix, it, shown(value), now - last_checkpoint, grad_norm, it - last_it)
            last_checkpoint, last_it = now, it
            if phase.monitored and stopping is not None and stopping.stop(value, grad_norm):
                converged = True
        if phase.summary is not None and it > phase_start:
            announce(verbose, prefix, f"{loss_name} after {it} iterations{phase.summary}: {shown(losses[-1]):.6f}")
        if converged:
            break
    if final_loss is not None:
        final = float(final_loss())
        check_finite(final, it, hint)
        losses.append(final)
    if losses:
        announce(verbose, prefix, f"{loss_name} after {it} iterations: {losses[-1]:.6f}")
    return OptimResult(losses, it, converged, (update, stopping))


#: Most function evaluations one L-BFGS line search may take.
_LINE_SEARCH_EVALUATIONS = 25


def lbfgs(parameters, objective, *, max_iter=200, tol=1e-4, verbose=0, prefix="sklearn_icon"):
    """Full-batch L-BFGS with a strong-Wolfe line search.

    Converged when the largest absolute gradient entry falls to ``tol`` (the
    criterion of scikit-learn's ``lbfgs`` solvers), or when the loss stops
    changing at the working precision. At least one iteration is taken.

    Parameters
    ----------
    parameters : list of torch.Tensor
        Optimised in place.
    objective : callable
        ``objective() -> scalar tensor``, differentiable in ``parameters``.
    max_iter : int, default=200
    tol : float, default=1e-4
    verbose : int, default=0
        Report every 10 iterations when positive.
    prefix : str
        Name in the progress lines.

    Returns
    -------
    OptimResult
        Its losses are the loss before each iteration, then the final one.
    """
    parameters = list(parameters)
    stall = 64 * torch.finfo(parameters[0].dtype).eps
    optimizer = torch.optim.LBFGS(
        parameters,
        lr=1.0,
        max_iter=1,
        # The line search's budget is max_eval less the evaluation that
        # opens each step: leave it a full one.
        max_eval=1 + _LINE_SEARCH_EVALUATIONS,
        tolerance_grad=tol,
        tolerance_change=stall,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = objective()
        loss.backward()
        return loss.detach()

    state = optimizer.state[parameters[0]]
    losses, n_iter, converged, moved = [], 0, False, False
    tic = time.perf_counter()
    while n_iter < max_iter:
        # One L-BFGS iteration per step. The step returns the loss where it
        # started and takes no iteration when the gradient there is within
        # tol: that is convergence.
        done_before = state.get("n_iter", 0)
        # The first iteration is always taken, so n_iter >= 1 as
        # scikit-learn expects even from a start that is already optimal.
        optimizer.param_groups[0]["tolerance_grad"] = tol if n_iter else -1.0
        loss = float(optimizer.step(closure))
        check_finite(loss, n_iter, LBFGS_DIVERGENCE_HINT)
        stalled = bool(losses) and abs(losses[-1] - loss) <= stall * max(1.0, abs(loss))
        losses.append(loss)
        moved = state.get("n_iter", 0) > done_before
        n_iter += int(moved)
        if not moved or stalled:
            converged = True
            break
        if n_iter % 10 == 0:
            report(verbose, prefix, n_iter, loss, time.perf_counter() - tic)
    if moved:
        # The last step moved the parameters past the loss recorded for it.
        with torch.no_grad():
            final = float(objective())
        check_finite(final, n_iter, LBFGS_DIVERGENCE_HINT)
        losses.append(final)
    if verbose:
        print(f"[{prefix}] {'Converged' if converged else 'Stopped'} after {n_iter} iterations: "
              f"loss = {losses[-1]:.7f} ({time.perf_counter() - tic:.2f}s)", flush=True)
    return OptimResult(losses, n_iter, converged)

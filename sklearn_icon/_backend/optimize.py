"""Optimisation loops for the exact, full-batch I-Con loss.

An *objective* here is a callable ``objective(Y, exaggeration, compute_loss)``
returning ``(loss, grad)`` for embeddings ``Y``: the closed-form
:class:`~sklearn_icon._backend.loss.DistanceKernelObjective`, or
:class:`AutogradObjective` for any kernel. ``exaggeration`` multiplies the
attraction to ``p`` (t-SNE's early exaggeration); the loss reported is always
the plain one.
"""

import math
import time

import torch

from .learned import log_kernel_matrix
from .loss import log_q_from_log_kernel
from .supervisory import debias, uniform_mass

#: Iterations between host-side checks (progress, convergence, NaN).
N_ITER_CHECK = 50

#: What a non-finite loss under Adam most likely means, for DivergedError.
ADAM_DIVERGENCE_HINT = "a learning_rate too large for Adam, or input with extreme values"


class AutogradObjective:
    """Exact I-Con loss and its gradient by autograd, for any learned kernel.

    Early exaggeration is applied to the gradient with respect to the log
    affinities ``log k_ij``: the loss's gradient there is the attraction
    ``-(1 - alpha) p_ij r_ij`` of the data's part of ``p~`` plus what the
    uniform part and the normaliser contribute, where ``r_ij`` is the share
    of ``q~_ij`` owed to the kernel (1 without ``alpha_q``). Exaggeration
    multiplies the attraction only, which for an undebiased ``q`` is
    t-SNE's ``e p_ij - q_ij``.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Supervisory distribution in the chosen normalisation. When it puts
        mass on the diagonal (PCA's ``p(j|i) = 1[i = j]``), ``q`` includes
        the self pairs too.
    kernel : {"student_t", "gaussian", "cosine"}
    normalization : {"joint", "conditional"}
    alpha, alpha_q : float, default=0.0
        Debiasing of ``p`` and of ``q``.
    dof, temperature : float
        Kernel parameters.
    """

    def __init__(self, P, kernel, normalization, alpha=0.0, alpha_q=0.0, dof=1.0, temperature=0.5):
        P = P.to_dense() if P.is_sparse else P
        debiased = debias(P, alpha, normalization)
        self.entropy = float(torch.special.xlogy(debiased, debiased).sum())
        # The data's part and the uniform part of p~ = (1 - alpha) p + alpha u
        # are kept apart: exaggeration multiplies the first only.
        self.P, self.alpha = P, float(alpha)
        self.support = self.P > 0
        self.include_self = bool(self.P.diagonal().sum() > 0)
        self.kernel, self.normalization = kernel, normalization
        self.alpha_q, self.dof, self.temperature = alpha_q, dof, temperature

    def _log_q(self, log_k, alpha_q):
        return log_q_from_log_kernel(log_k, self.normalization, alpha_q, include_self=self.include_self)

    def _cross_entropy(self, log_q):
        """``-sum p~ log q~`` split as (data's part, uniform part), per-anchor means if conditional."""
        n = log_q.shape[0]
        safe = torch.where(self.support, log_q, torch.zeros_like(log_q))
        cross_data = -(self.P * safe).sum()
        cross_uniform = log_q.new_zeros(())
        if self.alpha > 0:
            off_diagonal = ~torch.eye(n, dtype=torch.bool, device=log_q.device)
            cross_uniform = -uniform_mass(n, self.normalization) * log_q[off_diagonal].sum()
        if self.normalization == "conditional":
            cross_data, cross_uniform = cross_data / n, cross_uniform / n
        return cross_data, cross_uniform

    def _loss(self, cross_data, cross_uniform, n):
        cross_entropy = (1.0 - self.alpha) * cross_data + self.alpha * cross_uniform
        return cross_entropy + self.entropy * (1.0 if self.normalization == "joint" else 1.0 / n)

    def loss(self, Y):
        """The exact loss at ``Y`` (a scalar tensor)."""
        with torch.no_grad():
            log_k = log_kernel_matrix(Y, self.kernel, dof=self.dof, temperature=self.temperature)
            cross_data, cross_uniform = self._cross_entropy(self._log_q(log_k, self.alpha_q))
        return self._loss(cross_data, cross_uniform, Y.shape[0])

    def __call__(self, Y, exaggeration=1.0, compute_loss=True):
        """Loss and gradient at ``Y``; see the module docstring."""
        n = Y.shape[0]
        with torch.enable_grad():
            Y = Y.detach().requires_grad_(True)
            log_k = log_kernel_matrix(Y, self.kernel, dof=self.dof, temperature=self.temperature)
            logits = log_k.detach().requires_grad_(True)
            log_q = self._log_q(logits, self.alpha_q)
            cross_data, cross_uniform = self._cross_entropy(log_q)
            loss = self._loss(cross_data, cross_uniform, n)
            (grad_logits,) = torch.autograd.grad(loss, logits)
            if exaggeration != 1.0:
                with torch.no_grad():
                    attraction = self.P * (1.0 - self.alpha)
                    if self.alpha_q > 0:
                        kernel_share = self._log_q(logits, 0.0) + math.log1p(-self.alpha_q) - log_q
                        attraction = attraction * torch.where(self.support, kernel_share, 0.0).exp()
                    if self.normalization == "conditional":
                        attraction = attraction / n
                    grad_logits -= (exaggeration - 1.0) * attraction
            (grad,) = torch.autograd.grad(log_k, Y, grad_logits)
        return loss.detach(), grad


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


class DivergedError(FloatingPointError):
    """The loss became NaN or infinite during optimisation."""


def _check_finite(loss, iteration, hint):
    if not math.isfinite(loss):
        raise DivergedError(
            f"The loss became {loss} at iteration {iteration}. Likely causes: {hint}."
        )


def _report(verbose, prefix, iteration, loss, grad_norm, seconds):
    if verbose:
        print(
            f"[{prefix}] Iteration {iteration}: loss = {loss:.7f}, "
            f"gradient norm = {grad_norm:.7f} ({seconds:.2f}s)",
            flush=True,
        )


def gradient_descent(
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
    """t-SNE's optimiser: momentum, per-coordinate gains, early exaggeration.

    The schedule follows scikit-learn's ``TSNE``: ``early_exaggeration_iter``
    iterations with exaggerated ``p`` and the first momentum, then the plain
    loss with the second momentum, gains and velocity reset between the
    phases. The second phase stops early when the gradient norm falls below
    ``min_grad_norm`` or the loss has not improved for
    ``n_iter_without_progress`` iterations.

    Parameters
    ----------
    objective : callable
        ``objective(Y, exaggeration, compute_loss) -> (loss, grad)``.
    Y : torch.Tensor of shape (n, n_components)
        Initial embedding; not modified.
    max_iter : int, default=1000
        Iterations of both phases together.
    learning_rate : float, default=200.0
        Step size of the early exaggeration phase, and of the second phase
        when ``late_learning_rate`` is None.
    late_learning_rate : float, default=None
        Step size after early exaggeration.
    early_exaggeration, early_exaggeration_iter : float, int
        Factor on the attraction and length of the first phase.
    momentum : tuple of float, default=(0.5, 0.8)
        Momentum of the first and the second phase.
    min_gain, min_grad_norm, n_iter_without_progress : float, float, int
        scikit-learn's gain floor and stopping rules.
    verbose : int, default=0
        Report the loss every ``N_ITER_CHECK`` iterations when positive.
    prefix : str, default="IConEmbedding"
        Name that starts each report.

    Returns
    -------
    Y : torch.Tensor
        Final embedding.
    losses : torch.Tensor
        Loss (without exaggeration) every ``N_ITER_CHECK`` iterations, then
        the loss of the returned embedding.
    n_iter : int
        Iterations run.
    """
    Y = Y.clone()
    losses = []
    exploration = min(early_exaggeration_iter, max_iter)
    tic = time.perf_counter()
    best_loss, best_iter = math.inf, 0
    hint = "a learning_rate too large, or input with extreme values or scale"
    it = 0
    late_learning_rate = learning_rate if late_learning_rate is None else late_learning_rate
    for phase_end, exaggeration, mom, step in (
        (exploration, early_exaggeration, momentum[0], learning_rate),
        (max_iter, 1.0, momentum[1], late_learning_rate),
    ):
        velocity = torch.zeros_like(Y)
        gains = torch.ones_like(Y)
        while it < phase_end:
            checkpoint = (it + 1) % N_ITER_CHECK == 0
            loss, grad = objective(Y, exaggeration, checkpoint)
            same_direction = velocity * grad < 0
            gains = torch.where(same_direction, gains + 0.2, gains * 0.8).clamp_min_(min_gain)
            velocity.mul_(mom).sub_(step * gains * grad)
            Y += velocity
            it += 1
            if checkpoint:
                losses.append(loss)
                loss_value = float(loss)
                _check_finite(loss_value, it, hint)
                grad_norm = float(torch.linalg.vector_norm(grad))
                _report(verbose, prefix, it, loss_value, grad_norm, time.perf_counter() - tic)
                if exaggeration != 1.0:
                    continue
                if loss_value < best_loss:
                    best_loss, best_iter = loss_value, it
                elif it - best_iter > n_iter_without_progress:
                    break
                if grad_norm <= min_grad_norm:
                    break
    final = float(objective.loss(Y))
    if not (math.isfinite(final) and bool(torch.isfinite(Y).all())):
        raise DivergedError(f"The embedding became non-finite. Likely causes: {hint}.")
    losses.append(final)
    return Y, torch.tensor([float(v) for v in losses], dtype=torch.float64), it


def adam_descent(
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
    """Full-batch Adam on a parametric mapper's weights.

    The objective's gradient with respect to the embeddings ``f(X)`` is
    pushed back through the mapper, so a closed-form objective still trains
    any ``torch.nn.Module``.

    Parameters
    ----------
    mapper : torch.nn.Module
        Trained in place.
    X : torch.Tensor of shape (n, n_features)
    objective : callable
        ``objective(Y, exaggeration, compute_loss) -> (loss, grad)``.
    augment : callable, optional
        ``augment(None) -> X'``, a fresh augmentation of all of ``X``,
        called once per iteration (one epoch of the full batch): the mapper
        is trained on ``f(X')`` while ``p`` stays that of ``X``. The final
        loss is that of the un-augmented ``X``.

    Returns
    -------
    losses : torch.Tensor
        Loss every ``N_ITER_CHECK`` iterations, then that of the final mapper.
    n_iter : int
    """
    optimizer = torch.optim.Adam(mapper.parameters(), lr=learning_rate)
    losses = []
    tic = time.perf_counter()
    hint = ADAM_DIVERGENCE_HINT
    for it in range(1, max_iter + 1):
        exaggeration = early_exaggeration if it <= early_exaggeration_iter else 1.0
        checkpoint = it % N_ITER_CHECK == 0
        optimizer.zero_grad(set_to_none=True)
        Y = mapper(X if augment is None else augment(None))
        loss, grad = objective(Y.detach(), exaggeration, checkpoint)
        Y.backward(grad)
        optimizer.step()
        if checkpoint:
            losses.append(loss)
            loss_value = float(loss)
            _check_finite(loss_value, it, hint)
            _report(verbose, prefix, it, loss_value, float(torch.linalg.vector_norm(grad)), time.perf_counter() - tic)
    with torch.no_grad():
        final = float(objective.loss(mapper(X)))
    _check_finite(final, max_iter, hint)
    losses.append(final)
    return torch.tensor([float(v) for v in losses], dtype=torch.float64), max_iter


#: Most function evaluations one L-BFGS line search may take.
_LINE_SEARCH_EVALUATIONS = 25


def lbfgs_minimize(parameters, objective, *, max_iter=200, tol=1e-4, verbose=0, prefix="IConClassifier"):
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
    losses : list of float
        The loss before each iteration, then the final one.
    n_iter : int
        Iterations taken.
    converged : bool
    """
    parameters = list(parameters)
    dtype = parameters[0].dtype
    stall = 64 * torch.finfo(dtype).eps
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

    hint = "input with extreme values or a degenerate kernel (temperature or exponent)"
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
        _check_finite(loss, n_iter, hint)
        stalled = bool(losses) and abs(losses[-1] - loss) <= stall * max(1.0, abs(loss))
        losses.append(loss)
        moved = state.get("n_iter", 0) > done_before
        n_iter += int(moved)
        if not moved or stalled:
            converged = True
            break
        if verbose and n_iter % 10 == 0:
            print(f"[{prefix}] Iteration {n_iter}: loss = {loss:.7f} ({time.perf_counter() - tic:.2f}s)", flush=True)
    if moved:
        # The last step moved the parameters past the loss recorded for it.
        with torch.no_grad():
            final = float(objective())
        _check_finite(final, n_iter, hint)
        losses.append(final)
    if verbose:
        print(f"[{prefix}] {'Converged' if converged else 'Stopped'} after {n_iter} iterations: "
              f"loss = {losses[-1]:.7f} ({time.perf_counter() - tic:.2f}s)", flush=True)
    return losses, n_iter, converged


def minibatch_adam(
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

    Parameters
    ----------
    parameters : list of torch.Tensor
        Optimised in place.
    batch_objective : callable
        ``batch_objective(index) -> scalar tensor`` for a tensor of sample
        indices.
    n_samples : int
    batch_size : int
        A single batch (no shuffling) when at least ``n_samples``.
    max_iter : int, default=200
        Epochs.
    learning_rate, tol : float
    n_iter_no_change : int, default=10
    generator : torch.Generator, optional
        Source of the shuffles.
    device : torch.device or str
    verbose : int, default=0
        Report every epoch when positive.
    prefix : str

    Returns
    -------
    losses : list of float
        Loss of each epoch.
    n_iter : int
        Epochs taken.
    converged : bool
        Whether the no-improvement rule stopped training.
    """
    parameters = list(parameters)
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    hint = ADAM_DIVERGENCE_HINT
    losses, best, stale = [], math.inf, 0
    tic = time.perf_counter()
    for epoch in range(1, max_iter + 1):
        if batch_size >= n_samples:
            order = torch.arange(n_samples, device=device)
        else:
            order = torch.randperm(n_samples, generator=generator).to(device)
        total = 0.0
        for start in range(0, n_samples, batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = batch_objective(index)
            loss.backward()
            optimizer.step()
            total += loss.detach() * index.numel()
        epoch_loss = float(total) / n_samples
        _check_finite(epoch_loss, epoch, hint)
        losses.append(epoch_loss)
        if verbose:
            print(f"[{prefix}] Epoch {epoch}: loss = {epoch_loss:.7f} ({time.perf_counter() - tic:.2f}s)", flush=True)
        if epoch_loss > best - tol:
            stale += 1
        else:
            stale = 0
        best = min(best, epoch_loss)
        if stale >= n_iter_no_change:
            return losses, epoch, True
    return losses, max_iter, False

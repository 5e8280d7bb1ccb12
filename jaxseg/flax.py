"""Flax NNX adapter: any jaxseg state as an ``nnx.Metric``.

Flax is an optional dependency (``pip install 'jaxseg[flax]'``); this module is
the only place jaxseg imports it, and ``import jaxseg`` never does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from jaxseg._state import StateAlgebra

try:
    from flax import nnx
except ImportError as e:  # pragma: no cover - exercised only without flax
    raise ImportError(
        "jaxseg.flax needs Flax; install it with `pip install 'jaxseg[flax]'`."
    ) from e

__all__ = ["StateMetric"]


class StateMetric(nnx.Metric):
    """Any jaxseg state (``ConfusionMatrix``, ``SoftStats``, ``DistanceStats``, ...) as a metric.

    An ``nnx.Metric`` whose state's leaves live in an ``nnx.metrics.MetricState`` variable, so
    ``update`` works inside ``nnx.jit`` and the metric drops into
    ``nnx.MultiMetric``. ``update(**kwargs)`` merges
    ``from_model_output(**kwargs)`` of the state's class (``logits``,
    ``labels``, ``mask`` for the count and soft states, ``values`` for
    ``DistanceStats``; other keywords are ignored); ``compute()`` scores the
    merged state once, so the mIoU is the dataset-level mIoU, never an average
    of per-batch scores::

        state_n = empty + update_1 + ... + update_n        compute() = f(state_n)

    Args:
      state: a state class whose ``empty()`` takes no arguments (the classes
        returned by ``ConfusionMatrix.configure``, ``BinaryStats.configure``,
        ``BoundaryStats.configure``), or an empty state such as
        ``jaxseg.DistanceStats.empty(3)`` (its class's ``from_model_output``
        then counts the updates).
      compute: a function of the accumulated state giving the result of
        :meth:`compute`; default the state's own ``compute()`` (macro mIoU for
        the count and soft states, per-class means for ``DistanceStats``).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> from jaxseg.flax import StateMetric
      >>> metric = StateMetric(jaxseg.ConfusionMatrix.configure(2, ignore_index=255))
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 1.0]]])
      >>> metric.update(logits=logits, labels=jnp.array([[0, 1, 1, 255]]))
      >>> metric.compute()
      Array(0.5, dtype=float32)
      >>> metric.state.to_numpy()
      array([[1, 0],
             [1, 1]])
      >>> metric.reset()
      >>> int(metric.state.to_numpy().sum())
      0

    References:
      metrax's ``NnxWrapper`` (any CLU metric as an ``nnx.Metric``).
    """

    def __init__(self, state: Any, *, compute: Callable[[Any], Any] | None = None):
        empty = state.empty() if isinstance(state, type) else state
        if not isinstance(empty, StateAlgebra):
            raise TypeError(
                "`state` must be a jaxseg state class with a no-argument `empty()` (from "
                f"`configure`) or an empty state; got {state!r}."
            )
        self._empty = lambda: empty  # static: a closure, not data
        self._compute = compute
        self.total = nnx.metrics.MetricState(empty)

    @property
    def state(self) -> Any:
        """The accumulated jaxseg state."""
        return self.total.get_value()

    def update(self, **kwargs: Any) -> None:
        """Merge ``from_model_output(**kwargs)`` of the state's class, in place."""
        self.merge_state(type(self._empty()).from_model_output(**kwargs))

    def merge_state(self, state: Any) -> None:
        """Merge a state computed elsewhere (e.g. summed with ``psum``), in place.

        A state of the plain class (``ConfusionMatrix``) merges into a metric
        built from a configured one (``ConfusionMatrix.configure(...)``).
        """
        mine = type(self.state)
        if type(state) is not mine and issubclass(mine, type(state)):
            state = mine(**{f.name: getattr(state, f.name) for f in dataclasses.fields(state)})
        self.total.set_value(self.state.merge(state))

    def reset(self) -> None:
        """Back to the empty state, in place."""
        self.total.set_value(self._empty())

    def compute(self) -> Any:
        """``compute(state)`` if given at construction, else ``state.compute()``."""
        state = self.state
        return state.compute() if self._compute is None else self._compute(state)

"""Lazy references to JAX, so that host-only code paths never import it.

The score chain (:mod:`jaxseg._classwise`, :mod:`jaxseg._scores`) serves both
JAX statistics (the API) and NumPy float64 statistics (the command line's
exact host counts). ``import jax`` takes about two seconds, which the command
line does not pay when it only counts and scores on the host, so these modules
refer to ``jax`` and ``jax.numpy`` through :class:`LazyModule`, which imports
on first attribute access.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


class LazyModule:
    """A module imported on first attribute access; later accesses are plain lookups."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self._name), attr)
        setattr(self, attr, value)  # cache: __getattr__ only runs for missing attributes
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


jax: Any = LazyModule("jax")
jnp: Any = LazyModule("jax.numpy")


def is_jax_array(x: Any) -> bool:
    """Whether ``x`` is a JAX array or tracer, without importing JAX when nothing could be."""
    module = sys.modules.get("jax")
    # while another thread is still importing JAX its names are missing, and no JAX
    # array can exist yet
    array, core = getattr(module, "Array", None), getattr(module, "core", None)
    if array is None or core is None:
        return False
    return isinstance(x, array | core.Tracer)

"""Test-wide JAX settings: catch silent rank and dtype promotion bugs early."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

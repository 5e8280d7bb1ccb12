"""One process of the two-process test in ``tests/test_multihost.py``.

Usage: ``python multihost_worker.py PORT PROCESS_ID``. Each process owns 4 CPU
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``, set by the
test), feeds its half of a global batch and prints the exact counts it reads.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxseg

NUM_PROCESSES = 2
C = 4
IGNORE = 255


def dataset(steps=3, per_step=8, seed=0):
    """The same global data on every process; each process feeds its own rows."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(steps, per_step, 5, 5, C)).astype(np.float32)
    labels = rng.integers(0, C, size=(steps, per_step, 5, 5)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.1] = IGNORE
    return logits, labels


def main(port: str, process_id: int) -> None:
    # Cross-process collectives on CPU (gloo is the default in recent jax; be explicit).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=NUM_PROCESSES,
        process_id=process_id,
        initialization_timeout=40,
    )
    mesh = jax.make_mesh((jax.device_count(),), ("batch",))
    sharding = NamedSharding(mesh, P("batch"))
    logits, labels = dataset()
    per_process = logits.shape[1] // NUM_PROCESSES
    rows = slice(process_id * per_process, (process_id + 1) * per_process)

    @jax.jit
    def step(state, lg, lb):
        return state + jaxseg.ConfusionMatrix.from_logits(lg, lb, ignore_index=IGNORE)

    state = jaxseg.ConfusionMatrix.empty(C, ignore_index=IGNORE)
    for k in range(logits.shape[0]):
        lg = jax.make_array_from_process_local_data(sharding, logits[k, rows])
        lb = jax.make_array_from_process_local_data(sharding, labels[k, rows])
        state = step(state, lg, lb)
    # The state is replicated: every process holds the global counts.
    out = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "replicated": bool(state.counts.sharding.is_fully_replicated),
        "counts": state.to_numpy().tolist(),
    }
    print("RESULT " + json.dumps(out), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

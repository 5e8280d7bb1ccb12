"""``python -m jaxseg``: the same as the ``jaxseg`` console script."""

import os
import sys

if __name__ == "__main__":
    try:
        from jaxseg.cli import main
    except KeyboardInterrupt:  # Ctrl-C while starting up: no traceback
        print("jaxseg: interrupted", file=sys.stderr)
        sys.stderr.flush()
        # an import cut short (NumPy's BLAS threads half started) can hang the
        # interpreter's finalisation: end without it, nothing has been written
        os._exit(130)
    sys.exit(main())

"""``python -m jaxseg``: the same as the ``jaxseg`` console script."""

import sys

from jaxseg.cli import main

if __name__ == "__main__":
    sys.exit(main())

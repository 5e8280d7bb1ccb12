"""``python -m jaxseg``: the same as the ``jaxseg`` console script."""

import sys

if __name__ == "__main__":
    try:
        from jaxseg.cli import main
    except KeyboardInterrupt:  # Ctrl-C while starting up: no traceback
        print("jaxseg: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())

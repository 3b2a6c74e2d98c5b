"""``python -m compare``: see :mod:`compare.cli`."""

import sys

try:
    from compare.cli import main
except KeyboardInterrupt:  # Ctrl-C while PyMC is imported: no traceback either
    print("error: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())

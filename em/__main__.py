"""``python -m em``: see :mod:`em.cli`."""

import sys

from em.cli import main

sys.exit(main())

"""``python -m postfork.cli``: the same as the ``postfork`` command."""

import sys

from .main import main

sys.exit(main())

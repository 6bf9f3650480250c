"""``python -m mets_fast``: the same as the ``mets-fast`` command."""

import sys

from .cli import main

sys.exit(main())

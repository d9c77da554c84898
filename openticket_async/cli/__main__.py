"""``python -m openticket_async.cli``: the ``openticket`` command without its script."""

import sys

from ._main import main

sys.exit(main())

"""``python -m workspace_hub.cli``: the same ``ws``, where the script is not on PATH."""

import sys

from . import main

sys.exit(main())

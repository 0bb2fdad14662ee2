"""``python -m convkit`` runs the ``convkit`` command."""

import sys

from convkit.cli import main

sys.exit(main())

"""``python -m dispatcher`` runs the CLI."""

import sys

from dispatcher.cli import main

sys.exit(main())

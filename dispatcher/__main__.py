"""``python -m dispatcher`` runs the CLI."""

import sys

from dispatcher.cli.main import main

sys.exit(main())

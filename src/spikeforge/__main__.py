"""``python -m spikeforge`` (also what ``torchrun -m spikeforge`` runs)."""

import sys

from spikeforge.cli import main

sys.exit(main())

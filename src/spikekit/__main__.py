"""``python -m spikekit`` (also what ``torchrun -m spikekit`` runs)."""

import sys

from spikekit.cli import main

sys.exit(main())

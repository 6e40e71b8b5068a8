"""Exchange with other tools: NIR graphs (:func:`to_nir`, :func:`from_nir`).

This package is not imported by ``import spikekit``; ``spikekit.to_nir`` and
``spikekit.from_nir`` load it on first use, and it imports ``nir`` only inside the functions
that need it (``pip install spikekit[nir]``).
"""

from spikekit.export.nir import NIRGraphModule, Scale, Threshold, from_nir, to_nir

__all__ = ["NIRGraphModule", "Scale", "Threshold", "from_nir", "to_nir"]

"""Layer benchmark: Linear(n, n) + one LIF layer, forward + backward, vs the installed peers.

Same as ``spikekit bench --only layer``; each library runs in its own subprocess.

    PYTHONPATH=src python benchmarks/layer.py --sizes 512 2048 4096 -T 500 -B 16
"""

from __future__ import annotations

import argparse
import sys

from spikekit import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    bench.add_parser(sub)
    args = parser.parse_args(["bench", "--only", "layer", *sys.argv[1:]])
    sys.exit(bench.main(args))

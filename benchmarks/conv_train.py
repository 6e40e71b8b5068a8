"""Conv SNN training throughput (T = 4, batch 64, direct encoding) vs the installed peers.

Same as ``spikekit bench --only conv``; each library runs in its own subprocess.

    PYTHONPATH=src python benchmarks/conv_train.py --steps 10
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
    args = parser.parse_args(["bench", "--only", "conv", *sys.argv[1:]])
    sys.exit(bench.main(args))

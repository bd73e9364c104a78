#!/usr/bin/env python
"""Train models under one protocol and write run records and comparison tables.

Examples::

    python run_benchmark.py --model=SASRec,GRU4Rec,BERT4Rec --dataset=ml-100k --seeds=2020,2021,2022
    python run_benchmark.py --model=SASRec --dataset=ml-100k --budget=quick
    python run_benchmark.py --dataset=ml-100k --tables-only --target=SASRec
    python run_benchmark.py --model=SASRec --dataset=ml-100k --learning_rate=0.0005   # any config key
    python run_benchmark.py --model=IDLEAdapter --dataset=ml-100k --tune --tune-params=prefix_len,align_weight

The command itself is :mod:`recbole_llm.runner` (also ``recbole-llm run`` once the package is
installed); this script runs it with this checkout's dataset/, saved/ and results/ as defaults.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # this checkout's package, also when the file is loaded by path
    sys.path.insert(0, str(ROOT))

from recbole_llm.runner import (  # noqa: E402  (after the path above)
    SEED_MAX, default_output, output_option, parse_args, run_all, settings, tables,
)
from recbole_llm.runner import main as _main  # noqa: E402


def main(argv=None):
    return _main(argv, root=ROOT, prog="run_benchmark.py")


__all__ = ["SEED_MAX", "default_output", "main", "output_option", "parse_args", "run_all", "settings", "tables"]

if __name__ == "__main__":
    sys.exit(main())

"""python -m bench.stress: the slow proofs of the guarantees (docs/guarantees.md)."""

import asyncio
import sys

from bench.stress import main, parse

sys.exit(asyncio.run(main(parse())))

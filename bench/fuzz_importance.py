"""A larger seeded corpus of damaged/crafted importance files than CI runs; prints the outcomes.

Same generator and oracle as tests/importance/test_importance_corpus.py (refused / loaded
identical / raw exception / silent wrong load), over ``--size`` mutants per seed, with the peak
resident-size growth and the time per file. Exits 1 if any file crashed or loaded wrong.

    python bench/fuzz_importance.py [--size 5000] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "importance" / "test_importance_corpus.py"


def _corpus_module():
    spec = importlib.util.spec_from_file_location("importance_corpus", CORPUS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="mutants per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    corpus = _corpus_module()
    bad = 0
    with tempfile.TemporaryDirectory() as directory:
        prepared = corpus.prepare(Path(directory))
        for seed in args.seeds:
            before = corpus._max_rss_bytes()
            start = time.perf_counter()
            counts, failures = corpus.run_corpus(Path(directory), args.size, seed, prepared)
            seconds = time.perf_counter() - start
            grown = corpus._max_rss_bytes() - before
            print(f"seed {seed}: " + corpus.summary(counts))
            print(f"  peak RSS growth {grown / 2**20:.1f} MiB, "
                  f"{1000 * seconds / (args.size + 3):.2f} ms per file")
            for failure in failures[:20]:
                print("  FAILED", failure)
            bad += counts["raw"] + counts["wrong"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

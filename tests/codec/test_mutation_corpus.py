"""The seeded mutation corpus (mutation_corpus.py): >= 1,000 damaged or hostile files, each
rejected with FormatError or loaded to exactly the original, within the memory bound.

Before format version 2 the same corpus (on version-1 files; ``bench/fuzz_rdz.py --isolate``
with the old ``src`` on PYTHONPATH) gave 126 silent wrong loads, 28 raw exceptions (one a
SIGABRT in constriction) and 2 memory exhaustions out of 1,010.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
import mutation_corpus as mc  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
CORPUS_SIZE = 1200


def test_mutation_corpus_has_no_failures(capsys):
    verdicts, failures, stats = mc.run(CORPUS_SIZE, seed=0)
    with capsys.disabled():
        print("\n" + mc.summary_line(verdicts, stats))
    assert sum(verdicts.values()) >= 1000
    assert failures == [], failures[:10]
    families = {kind.split(",")[0].split(":")[0] for kind, _ in stats["by_kind"]}
    assert {"truncated", "bit flips", "byte edit", "header", "section", "foreign file",
            "truncated/extended"} <= families
    # The edits that only the content CRC can see are in the corpus and are caught by it.
    assert sum(count for message, count in stats["messages"].items()
               if message.startswith("content check failed")) >= 5
    assert verdicts["rejected"] > 0.9 * sum(verdicts.values())


def test_version_1_mutations_never_crash_or_exhaust_memory(capsys):
    """Version-1 files have no content CRC: an edit with a recomputed file CRC can load wrong
    (reported, not asserted). What must hold for them too: no raw exception (no SIGABRT: every
    count is bounded before constriction runs), no memory bomb."""
    bases = {path.stem: path.read_bytes() for path in sorted(GOLDEN.glob("tiny-*.rdz"))
             if "-v" not in path.stem}
    assert len(bases) == 2
    verdicts, failures, stats = mc.run(300, seed=1, bases=bases)
    with capsys.disabled():
        print("\nversion 1 (no content CRC: wrong loads reported, not asserted): "
              + mc.summary_line(verdicts, stats))
    assert verdicts["CRASH"] == 0 and verdicts["MEMORY"] == 0, failures[:10]

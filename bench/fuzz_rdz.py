"""Judge a seeded corpus of damaged / hostile .rdz files and print the verdict table.

    python bench/fuzz_rdz.py                      # 1,000 mutations, in process, tracemalloc
    python bench/fuzz_rdz.py --size 5000 --seed 3
    python bench/fuzz_rdz.py --isolate            # each case in a forked child under an
                                                  # address-space limit: survives SIGABRT
                                                  # and memory exhaustion (older releases)

To measure a release from before format version 2, put its ``src`` first on PYTHONPATH and use
``--isolate`` (its ANS decoder aborts the process on some files). Verdicts: rejected (the
project's FormatError), identical (loads to the original: harmless), WRONG (silent wrong load),
CRASH (another exception, or a signal), MEMORY (over the per-case bound, or MemoryError).
Never asserts; tests/codec/test_mutation_corpus.py asserts 0 failures on a CI-sized corpus.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "codec"))
import mutation_corpus as mc  # noqa: E402

_ISOLATED_MEMORY_LIMIT = 4 << 30  # bytes of address space per forked case
_ISOLATED_TIMEOUT_S = 20


def _judge_isolated(data: bytes, original) -> tuple[str, str, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: judge, send the verdict, exit without cleanup
        os.close(read_end)
        resource.setrlimit(resource.RLIMIT_AS, (_ISOLATED_MEMORY_LIMIT, _ISOLATED_MEMORY_LIMIT))
        signal_alarm(_ISOLATED_TIMEOUT_S)
        try:
            verdict = mc.judge(data, original)
            if verdict[0] == "CRASH" and verdict[1].startswith("MemoryError"):
                verdict = ("MEMORY", verdict[1], verdict[2])
        except BaseException as error:  # noqa: BLE001
            verdict = ("CRASH", f"{type(error).__name__}: {error}", 0)
        os.write(write_end, pickle.dumps(verdict))
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if chunks:
        return pickle.loads(b"".join(chunks))
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        kind = "MEMORY" if number == 9 else "CRASH"
        return kind, f"killed by signal {number}", 0
    return "CRASH", f"exited with status {os.WEXITSTATUS(status)}", 0


def signal_alarm(seconds: int) -> None:
    import signal

    signal.alarm(seconds)  # SIGALRM kills a runaway case (counted as CRASH: signal 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="mutated files (plus foreign)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--isolate", action="store_true", help="fork per case (see doc)")
    parser.add_argument("--show", type=int, default=10, help="failures to print")
    args = parser.parse_args()
    import rdcompress

    print(f"rdcompress from {Path(rdcompress.__file__).parent}")
    bases = {name: mc.load(data) for name, data in mc.base_files().items()}
    judge = _judge_isolated if args.isolate else mc.judge
    verdicts: Counter = Counter()
    by_kind: Counter = Counter()
    failures = []
    worst = 0.0
    start = time.perf_counter()
    for name, kind, data in mc.corpus(args.size, args.seed):
        verdict, message, peak = judge(data, bases.get(name))
        verdicts[verdict] += 1
        family = kind.split(",")[0].split(":")[0]
        by_kind[(family, verdict)] += 1
        worst = max(worst, peak / max(len(data), 1))
        if verdict in mc.FAILURES:
            failures.append((name, kind, message))
    elapsed = time.perf_counter() - start
    columns = ["rejected", "identical", *mc.FAILURES]
    families = sorted({family for family, _ in by_kind})
    print(f"{'mutation family':<42}" + "".join(f"{c:>10}" for c in columns))
    for family in families:
        print(f"{family[:42]:<42}" + "".join(f"{by_kind[(family, c)]:>10}" for c in columns))
    print(f"{'total':<42}" + "".join(f"{verdicts[c]:>10}" for c in columns))
    for name, kind, message in failures[:args.show]:
        print(f"  FAIL {name} / {kind}: {message[:160]}")
    print(mc.summary_line(verdicts, {"worst_peak_per_file_byte": worst}))
    print(f"{sum(verdicts.values())} cases in {elapsed:.1f} s")


if __name__ == "__main__":
    main()

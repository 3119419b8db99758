#!/usr/bin/env python3
"""Runs the tests of the Python scripts (scripts/test_*.py, unittest) for `make test`.

    run_script_tests.py [-k PATTERN]

Prints each test as unittest does, then one line in cargo test's format,
`test result: ok. N passed; N failed; N ignored; 0 measured; 0 filtered out; finished in S`,
which scripts/run-tests.sh adds into make test's summary. Exits 1 if a test failed.
With the stack's env (AWS_ENDPOINT_URL) the tests use its moto; alone they start their own.
"""

from __future__ import annotations

import argparse
import sys
import time
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="patterns", action="append", help="only tests whose name contains this (unittest -k)")
    args = parser.parse_args(argv)
    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [f"*{p}*" for p in args.patterns]
    suite = loader.discover(str(SCRIPTS), pattern="test_*.py", top_level_dir=str(SCRIPTS))
    started = time.monotonic()
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - failed - skipped)
    outcome = "ok" if result.wasSuccessful() else "FAILED"
    print(
        f"test result: {outcome}. {passed} passed; {failed} failed; {skipped} ignored; 0 measured; "
        f"0 filtered out; finished in {time.monotonic() - started:.2f}s",
        flush=True,
    )
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tests of benches/bench_bytes.py, the item-size and zip arithmetic of `make bench-lambdas`.

The cases follow DynamoDB's published sizing rules ("Item sizes and formats", DynamoDB developer
guide): names and strings in UTF-8 bytes, numbers ~1 byte per 2 significant digits + 1, a list or
map 3 bytes + 1 per element.

    .venv/bin/python -m unittest scripts/test_bench_bytes.py -v
"""

from __future__ import annotations

import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

import bench_bytes  # noqa: E402


class ItemSize(unittest.TestCase):
    def test_strings_and_names_count_utf8_bytes(self) -> None:
        self.assertEqual(bench_bytes.item_size({"pk": {"S": "ab"}}), 4)
        self.assertEqual(bench_bytes.item_size({"n": {"S": "é"}}), 3)

    def test_numbers_take_one_byte_per_two_significant_digits_plus_one(self) -> None:
        self.assertEqual(bench_bytes.number_size("123"), 3)
        self.assertEqual(bench_bytes.number_size("1700000000"), 2)  # one significant digit
        self.assertEqual(bench_bytes.number_size("-12.5"), 4)

    def test_maps_and_lists_carry_three_bytes_and_one_per_element(self) -> None:
        self.assertEqual(bench_bytes.value_size({"M": {"a": {"S": "x"}}}), 3 + 1 + 1 + 1)
        self.assertEqual(bench_bytes.value_size({"L": [{"BOOL": True}, {"NULL": True}]}), 3 + 2 + 2)

    def test_kinds_follow_the_key_layout(self) -> None:
        self.assertEqual(bench_bytes.kind_of({"pk": {"S": "CHARGE#ch_1"}, "sk": {"S": "REFUND#rf_1"}}), "refund")
        self.assertEqual(bench_bytes.kind_of({"pk": {"S": "CHARGE#ch_1"}, "sk": {"S": "CHARGE"}}), "charge")
        self.assertEqual(bench_bytes.kind_of({"pk": {"S": "EVENT#stripe#evt_1"}, "sk": {"S": "EVENT"}}), "gateway event")


class Zip(unittest.TestCase):
    def test_the_zip_holds_an_executable_bootstrap(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            binary = Path(d) / "f"
            binary.write_bytes(b"\x7fELF" + b"\0" * 10000)
            size = bench_bytes.zip_bytes(binary)
            self.assertLess(size, 1000)
            self.assertGreater(size, 0)


if __name__ == "__main__":
    unittest.main()

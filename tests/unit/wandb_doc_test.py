"""docs/wandb.md, the table of W&B's sweep schema against xpscale, is whole
and true to the tests it names.

Every key, distribution and macro of W&B's schema (the lists below, from
wandb/sweeps src/sweeps/config/schema.json and W&B's agent) has a row in its
section; every row says "same as W&B", "differs: ..." or "not supported:
..."; every test a row names exists in the source tree (a GoogleTest
`Suite.Name` in tests/unit/*.cpp, or a `def test_...(` under tests/); and
every docs/wandb.md#anchor that the code prints is a heading of the page.

Run: cd tests/unit && /usr/bin/python3 -m unittest -v wandb_doc_test
"""
import pathlib
import re
import unittest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "wandb.md"

# Section anchor -> the W&B names that must have a row there, as the row's
# first cell writes them (backticks removed).
SCHEMA = {
    "top-level-keys": [
        "apiVersion", "kind", "method", "method: grid", "method: random", "method: bayes",
        "method: custom", "parameters", "metric", "early_terminate", "run_cap", "program",
        "command", "name", "description", "project", "entity", "controller",
        "controller: {type: local}", "controller: {type: cloud}", "job", "image_uri", "launch",
        "scheduler", "scheduler.job", "scheduler.resource", "scheduler.resource_args",
        "scheduler.docker_image", "scheduler.settings", "scheduler.num_workers",
        "scheduler.polling_sleep",
    ],
    "metric": [
        "metric.name", "metric.goal", "metric.target", "metric.impute",
        "metric.impute_while_running",
    ],
    "early_terminate": [
        "early_terminate.type", "early_terminate.min_iter", "early_terminate.max_iter",
        "early_terminate.s", "early_terminate.eta", "early_terminate.strict",
    ],
    "parameters-and-distributions": [
        "parameters (nested)", "distribution", "value", "values", "probabilities", "min", "max",
        "mu", "sigma", "q", "a", "b",
        "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform",
        "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform",
        "q_log_uniform_values", "inv_log_uniform", "inv_log_uniform_values", "normal",
        "q_normal", "log_normal", "q_log_normal", "beta", "q_beta",
    ],
    "command-macros": [
        "${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}",
        "${args_no_boolean_flags}", "${args_no_equals}", "${args_json}", "${args_json_file}",
        "${args_append_hydra}", "${args_override_hydra}", "${envvar:NAME}",
    ],
    "training-scripts-the-wandb-module": [
        "wandb.init", "wandb.config", "wandb.log", "wandb.log(step=)", "wandb.log(commit=)",
        "wandb.summary", "wandb.define_metric", "wandb.agent", "wandb.sweep", "wandb.finish",
        "the real wandb (wandb: passthrough)", "WANDB_MODE=offline", "wandb: auto",
        "wandb: shim", "wandb: off", "a metric never logged",
    ],
    "running-a-sweep": [
        "wandb sweep sweep.yaml", "wandb agent SWEEP_ID", "a sweep without run_cap",
        "wandb sweep --stop SWEEP_ID", "wandb sweep --cancel SWEEP_ID",
    ],
}

# Rows that say `none` in the test column: no test checks them yet. A row
# leaves this list when a test for it is named.
UNTESTED = {
    ("top-level-keys", "entity"),
    ("top-level-keys", "scheduler.resource_args"),
    ("top-level-keys", "scheduler.docker_image"),
    ("top-level-keys", "scheduler.settings"),
    ("top-level-keys", "scheduler.polling_sleep"),
    ("parameters-and-distributions", "q_log_uniform"),
    ("parameters-and-distributions", "q_normal"),
    ("parameters-and-distributions", "q_log_normal"),
}

STATUS = re.compile(r"^(same as W&B\b|differs: \S|not supported: \S)")
GTEST = re.compile(r"^\s*TEST(?:_P|_F)?\(\s*(\w+)\s*,\s*(\w+)\s*\)", re.MULTILINE)
PYTEST = re.compile(r"^\s*def (test_\w+)\(", re.MULTILINE)
CELL_SPLIT = re.compile(r"(?<!\\)\|")


def slug(heading):
    """The anchor GitHub gives a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def parse(text):
    """(headings in order, rows): each row a dict of section, key, status,
    tests (list of names, empty for `none`) and line."""
    headings, rows = [], []
    section = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section = slug(line[3:])
            headings.append(section)
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip().strip("|"))]
        if all(re.fullmatch(r":?-+:?", c) for c in cells) or cells[0] == "W&B":
            continue  # separator or header
        key = cells[0].replace("`", "").replace("\\|", "|")
        tests_cell = cells[2] if len(cells) > 2 else ""
        names = [n.strip().strip("`").strip() for n in tests_cell.split(",")]
        rows.append({
            "section": section, "key": key, "status": cells[1] if len(cells) > 1 else "",
            "tests": [] if tests_cell == "none" else [n for n in names if n],
            "raw_tests": tests_cell, "cells": len(cells), "line": number,
        })
    return headings, rows


def known_tests():
    """Suite.Name of every GoogleTest in tests/unit/*.cpp and the name of
    every Python test method under tests/."""
    names = set()
    for path in sorted((REPO / "tests" / "unit").glob("*.cpp")):
        names.update(f"{s}.{n}" for s, n in GTEST.findall(path.read_text(errors="replace")))
    for path in sorted((REPO / "tests").rglob("*.py")):
        names.update(PYTEST.findall(path.read_text(errors="replace")))
    return names


class WandbDocTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.headings, cls.rows = parse(DOC.read_text())
        cls.tests = known_tests()

    def where(self, row):
        return f"docs/wandb.md:{row['line']}: {row['key']!r}"

    def test_the_tables_are_found(self):
        self.assertGreater(len(self.rows), 50)
        self.assertGreater(len(self.tests), 100)  # the index itself is not empty

    def test_every_section_has_its_heading(self):
        for section in SCHEMA:
            self.assertIn(section, self.headings, f"no heading for docs/wandb.md#{section}")
        for row in self.rows:
            self.assertIn(row["section"], SCHEMA, f"{self.where(row)}: a row outside the sections")

    def test_every_wandb_key_macro_and_distribution_has_a_row(self):
        have = {(r["section"], r["key"]) for r in self.rows}
        missing = [f"#{s}: {k}" for s, keys in SCHEMA.items() for k in keys if (s, k) not in have]
        self.assertEqual(missing, [], "no row in docs/wandb.md for these")

    def test_no_row_is_given_twice(self):
        seen = {}
        for row in self.rows:
            first = seen.setdefault((row["section"], row["key"]), row["line"])
            self.assertEqual(first, row["line"], f"{self.where(row)}: also at line {first}")

    def test_every_row_has_three_cells_and_a_status_of_one_of_the_three_kinds(self):
        for row in self.rows:
            with self.subTest(row=self.where(row)):
                self.assertEqual(row["cells"], 3, self.where(row))
                self.assertRegex(row["status"], STATUS,
                                 f"{self.where(row)}: the status must start with 'same as W&B', "
                                 "'differs: ' or 'not supported: '")

    def test_every_named_test_exists(self):
        for row in self.rows:
            for name in row["tests"]:
                with self.subTest(row=self.where(row), test=name):
                    self.assertRegex(name, r"^(\w+\.\w+|test_\w+)$",
                                     f"{self.where(row)}: name a test as Suite.Name or test_name")
                    self.assertIn(name, self.tests,
                                  f"{self.where(row)}: no TEST({name.replace('.', ', ')}) in "
                                  f"tests/unit/*.cpp and no def {name}( under tests/")

    def test_only_the_known_untested_rows_name_no_test(self):
        for row in self.rows:
            with self.subTest(row=self.where(row)):
                untested = (row["section"], row["key"]) in UNTESTED
                if untested:
                    self.assertEqual(row["raw_tests"], "none",
                                     f"{self.where(row)}: names a test now; take it off UNTESTED")
                else:
                    self.assertTrue(row["tests"], f"{self.where(row)}: names no test")
        have = {(r["section"], r["key"]) for r in self.rows}
        self.assertEqual(sorted(UNTESTED - have), [], "UNTESTED lists rows that are gone")

    def test_every_link_the_code_prints_has_its_heading(self):
        linked = set()
        for folder in ("runtime", "launcher", "python"):
            for path in (REPO / folder).rglob("*"):
                if path.suffix in (".cpp", ".h", ".py") and path.is_file():
                    linked.update(re.findall(r"docs/wandb\.md#([\w-]+)",
                                             path.read_text(errors="replace")))
        for anchor in sorted(linked):
            self.assertIn(anchor, self.headings, f"the code links docs/wandb.md#{anchor}")


if __name__ == "__main__":
    unittest.main()

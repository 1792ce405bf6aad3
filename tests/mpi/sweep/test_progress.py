"""Progress in the terminal and events for programs (issue 16): on a
terminal, one status block redrawn in place that stays as the summary;
elsewhere one line per trial start and end and a summary line every
--progress-interval; --quiet for none; --json-events for one JSON object per
line (docs/runtime.md, "Progress and events").

Environment (set by CMake): XPSCALE_BIN, XPSCALE_TRAINER, XPSCALE_TEST_TMP.
"""
import fcntl
import json
import os
import pty
import re
import signal
import struct
import sys
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sweep import TRAINER, XPSCALE, SweepTest  # noqa: E402

BLOCK_COUNTS = re.compile(r"^xpscale: \d+/\d+ done, \d+ running, \d+ failed, \d+ queued")
TRIAL_END = re.compile(r"^xpscale: trial (\d+) (?:attempt \d+ )?(completed|stopped|failed)\b")


def screen(output):
    """The screen a terminal shows after `output`: enough of ANSI for the
    block (carriage return, newline, cursor up, erase line and erase below);
    lines do not wrap."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(output):
        c = output[i]
        m = re.match(r"\x1b\[(\d*)([AKJ])", output[i:])
        if m:
            n, op = int(m.group(1) or 1), m.group(2)
            if op == "A":
                row = max(0, row - n)
            else:
                lines[row] = lines[row][:col]
                if op == "J":
                    del lines[row + 1:]
            i += len(m.group(0))
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + c + line[col + 1:]
            col += 1
        i += 1
    return [l for l in lines if l]


class ProgressTest(SweepTest):
    tmp_prefix = "progress-"

    def setUp(self):
        super().setUp()
        self.env.pop("XPSCALE_TERMINAL", None)

    def six_trials(self, crash=False):
        """Trial 3 (x = 3) is the best; with crash, the odd trials fail."""
        parameters = {"x": {"values": [0, 1, 2, 3, 4, 5]}, "ms": {"value": 50}}
        if crash:
            parameters = {"x": {"values": [1, 3, 5]}, "mode": {"values": ["ok", "crash"]},
                          "ms": {"value": 50}}
        return self.external(parameters)

    def on_a_terminal(self, argv, columns=200, term="xterm"):
        """Runs argv with stdin, stdout and stderr on a pty `columns` wide;
        returns (exit status, everything it wrote)."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its terminal
            try:
                fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
                os.execvpe(argv[0], argv, dict(self.env, TERM=term))
            finally:
                os._exit(127)
        out = b""
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")

    def events(self, text):
        lines = [l for l in text.splitlines() if l.strip()]
        return [json.loads(l) for l in lines]

    # -- tests -----------------------------------------------------------
    def test_json_events_list_every_trial_start_and_end_then_the_summary(self):
        # Through `xpscale launch`, which hands --json-events on to `xpscale run`.
        p = self.run_cmd([XPSCALE, "launch", "-n", "2", self.six_trials(crash=True),
                          "--json-events", "--progress-interval", "0.2"])
        events = self.events(p.stdout)  # stdout holds nothing else
        names = [e["event"] for e in events]
        self.assertEqual(names[0], "sweep_started")
        self.assertEqual(names[-1], "sweep_ended")
        for e in events:
            self.assertLessEqual({"event", "time", "sweep"}, set(e), e)
            self.assertTrue(e["sweep"].endswith("cfg.yaml"), e)  # no name: the config's path
            self.assertLess(abs(e["time"] - time.time()), 600)
        started = [e for e in events if e["event"] == "trial_started"]
        ended = [e for e in events if e["event"] == "trial_ended"]
        self.assertEqual(sorted(e["id"] for e in started), list(range(6)))
        self.assertEqual(sorted(e["id"] for e in ended), list(range(6)))
        self.assertEqual({e["params"]["mode"] for e in started}, {"ok", "crash"})
        for e in ended:
            self.assertEqual(e["status"], "failed" if e["id"] % 2 else "completed", e)
            self.assertTrue(e["final"])
            self.assertGreater(e["seconds"], 0)
        self.assertIn("exited with status 3", ended[[e["id"] for e in ended].index(1)]["reason"])
        self.assertAlmostEqual(next(e for e in ended if e["id"] == 2)["value"], 0.0)
        self.assertGreaterEqual(names.count("progress"), 1)
        self.assertEqual(events[0]["planned"], 6)
        self.assertEqual(events[0]["metric"], "loss")
        last = events[-1]
        self.assertEqual((last["status"], last["exit_status"]), ("finished", 0))
        self.assertEqual((last["planned"], last["completed"], last["failed"], last["queued"]),
                         (6, 3, 3, 0))
        self.assertEqual((last["best_trial"], last["best_params"]), (2, {"x": 3, "mode": "ok",
                                                                          "ms": 50}))
        self.assertGreater(last["busy_fraction"], 0)
        self.assertLessEqual(last["busy_fraction"], 1)

    def test_not_a_terminal_prints_one_line_per_trial_end_and_summary_lines(self):
        p = self.run_cmd([XPSCALE, "run", self.six_trials(crash=True), "--progress-interval",
                          "0.2"])
        self.assertEqual(p.stdout, "")  # no events without --json-events
        self.assertNotIn("\x1b[", p.stderr)
        ends = [TRIAL_END.match(l) for l in p.stderr.splitlines()]
        ends = [(int(m.group(1)), m.group(2)) for m in ends if m]
        self.assertEqual(sorted(ends), [(i, "failed" if i % 2 else "completed")
                                        for i in range(6)], p.stderr)
        starts = re.findall(r"^xpscale: trial (\d+) started on group 0: x=(\d+), mode=(\w+)",
                            p.stderr, re.M)
        self.assertEqual(len(starts), 6, p.stderr)
        self.assertIn("xpscale: trial 2 completed after", p.stderr)
        summaries = [l for l in p.stderr.splitlines() if re.match(r"xpscale: \d+/6 done", l)]
        self.assertGreaterEqual(len(summaries), 2, p.stderr)  # at least one, and the last
        self.assertRegex(summaries[-1], r"^xpscale: 6/6 done \(3 failed\), 0 running, 0 queued, "
                                        r"best loss 0 \(trial 2\), .*groups \d+% busy$")

    def test_trial_lines_stop_at_100_a_second_and_the_summary_counts_the_rest(self):
        # In-process no-op trials: hundreds a second, even on a busy machine.
        cfg = self.config({"x": {"values": list(range(2000))}, "steps": {"value": 1}})
        p = self.run_cmd([TRAINER, "--sweep", cfg, "--progress-interval", "0.2"])
        lines = p.stderr.splitlines()
        shown = len([l for l in lines if re.match(r"xpscale: trial \d+ (started|completed)", l)])
        not_shown = sum(int(n) for n in re.findall(r"; (\d+) trial lines not shown", p.stderr))
        self.assertGreater(not_shown, 0, p.stderr[-2000:])
        self.assertEqual(shown + not_shown, 2 * 2000)
        h, m, sec = map(int, re.search(r" in (\d\d):(\d\d):(\d\d);", p.stderr).groups())
        self.assertLessEqual(shown, 100 * (3600 * h + 60 * m + sec + 2))

    def test_quiet_prints_no_progress_but_keeps_json_events(self):
        events = os.path.join(self.tmp, "events.jsonl")
        p = self.run_cmd([XPSCALE, "run", self.six_trials(), "--quiet", "--progress-interval",
                          "0.2", "--json-events=" + events])
        self.assertEqual(p.stderr, "")
        self.assertEqual(p.stdout, "")
        with open(events) as f:
            names = [e["event"] for e in self.events(f.read())]
        self.assertEqual(names.count("trial_ended"), 6)
        self.assertEqual(names[-1], "sweep_ended")
        # On a terminal too: nothing drawn.
        self.out = os.path.join(self.tmp, "out2")
        status, out = self.on_a_terminal([XPSCALE, "run", self.six_trials(), "--quiet"])
        self.assertEqual(status, 0, out)
        self.assertEqual(out, "")

    def test_a_terminal_shows_the_block_in_place_and_ends_with_the_best_params(self):
        status, out = self.on_a_terminal([XPSCALE, "launch", "-n", "2", self.six_trials()])
        self.assertEqual(status, 0, out)
        self.assertGreaterEqual(out.count("\x1b[3A"), 2, "the block was never redrawn")
        shown = screen(out)
        blocks = [l for l in shown if BLOCK_COUNTS.match(l)]
        self.assertEqual(blocks, ["xpscale: 6/6 done, 0 running, 0 failed, 0 queued"], shown)
        at = shown.index(blocks[0])
        self.assertRegex(shown[at + 1], r"^  best loss 0 \(trial 3\): x=3, ms=50$")
        self.assertRegex(shown[at + 2], r"^  \d\d:\d\d:\d\d elapsed, groups \d+% busy$")
        self.assertRegex(shown[-1], r"^xpscale: 6 trials: 6 finished, 0 failed")
        self.assertFalse([l for l in shown if TRIAL_END.match(l)], shown)  # no event lines

    def test_a_terminal_20_columns_wide_gets_the_block_cut_to_fit(self):
        status, out = self.on_a_terminal([XPSCALE, "run", self.six_trials(crash=True)],
                                         columns=20)
        self.assertEqual(status, 0, out)
        shown = screen(out)
        block = [l for l in shown if re.match(r"xpscale: \d+/|  best|  \d\d:", l)]
        self.assertEqual(len(block), 3, shown)
        self.assertTrue(all(len(l) <= 19 for l in block), block)
        # Failures are messages above the block, whole.
        self.assertEqual(len([l for l in shown if re.match(r"xpscale: trial \d failed: ", l)]),
                         3, shown)

    def test_a_dumb_terminal_gets_plain_lines(self):
        status, out = self.on_a_terminal([XPSCALE, "run", self.six_trials()], term="dumb")
        self.assertEqual(status, 0, out)
        self.assertNotIn("\x1b", out)
        ends = [m.group(1) for m in map(TRIAL_END.match, out.splitlines()) if m]
        self.assertEqual(sorted(ends), [str(i) for i in range(6)], out)


if __name__ == "__main__":
    unittest.main()

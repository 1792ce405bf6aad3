"""The Python package as a user imports it (the built one, from
${build}/python): version, xpscale.trial() standalone and under the
runtime's environment, reports, and checkpoint markers written by the C++
code. Run by ctest with /usr/bin/python3 and PYTHONPATH set to the build's
package; XPSCALE_VERSION is the CMake project's version.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import xpscale
import xpscale._native as native
import xpscale.report


def run_python(code, env=None, cwd=None):
    """Runs code in a fresh /usr/bin/python3 (sys.executable) with env."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


class PackageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="xpscale-pytest-")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("XPSCALE_") and k not in ("RANK", "WORLD_SIZE")}
        self.env["PYTHONPATH"] = os.path.dirname(os.path.dirname(xpscale.__file__))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_version_is_the_cpp_builds(self):
        self.assertEqual(xpscale.__version__, os.environ["XPSCALE_VERSION"])
        self.assertEqual(native.__version__, os.environ["XPSCALE_VERSION"])

    def test_help_documents_the_trial_api(self):
        for obj in (xpscale.trial, xpscale.Trial, xpscale.Trial.report,
                    xpscale.Trial.checkpoint_saved, native.read_checkpoint_step):
            self.assertTrue(obj.__doc__ and len(obj.__doc__) > 40, obj)

    def test_standalone_params_come_from_argv_over_defaults_typed(self):
        t = xpscale.trial({"optimizer": {"lr": 0.1, "name": "sgd"}, "epochs": 3},
                          argv=["--optimizer.lr=0.3", "epochs=5", "--batch", "64", "--amp",
                                "--tags=[1, 2]", "--note=fast run"])
        self.assertTrue(t.standalone)
        self.assertEqual(t.params, {"optimizer": {"lr": 0.3, "name": "sgd"}, "epochs": 5,
                                    "batch": 64, "amp": True, "tags": [1, 2],
                                    "note": "fast run"})
        self.assertIsInstance(t.params["epochs"], int)
        self.assertIsInstance(t.params["optimizer"]["lr"], float)
        self.assertEqual((t.rank, t.world_size, t.is_leader), (0, 1, True))

    def test_a_word_that_is_not_a_parameter_is_a_clear_error(self):
        with self.assertRaisesRegex(ValueError, "argument 'oops'"):
            xpscale.trial(argv=["oops"])

    def test_under_the_runtime_params_ranks_and_reports_come_from_its_environment(self):
        r, w = os.pipe()
        env = dict(self.env, XPSCALE_TRIAL_ID="7", XPSCALE_ATTEMPT="2",
                   XPSCALE_PARAMS=json.dumps({"optimizer.lr": 0.01, "layers": 4, "act": "relu",
                                              "bn": False}),
                   XPSCALE_CHECKPOINT_DIR=os.path.join(self.tmp, "ckpt"),
                   XPSCALE_METRICS_FD=str(w), RANK="1", WORLD_SIZE="2", LOCAL_RANK="1",
                   LOCAL_WORLD_SIZE="2")
        p = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import json, xpscale
            t = xpscale.trial({"layers": 2, "dropout": 0.5}, argv=["--layers=9"])
            print(json.dumps([t.id, t.attempt, t.params, t.rank, t.world_size, t.local_rank,
                              t.local_world_size, t.standalone, t.is_leader]))
            t.report(step=3, loss=0.25, acc=0.5)
            t.report({"loss": 0.125})
        """)], env=env, pass_fds=(w,), capture_output=True, text=True, timeout=60)
        os.close(w)
        with os.fdopen(r) as f:
            lines = [json.loads(line) for line in f.read().splitlines()]
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), [
            "7", 2, {"optimizer": {"lr": 0.01}, "layers": 4, "act": "relu", "bn": False,
                     "dropout": 0.5}, 1, 2, 1, 2, False, False])
        self.assertEqual(lines, [{"step": 3, "loss": 0.25, "acc": 0.5},
                                 {"step": 4, "loss": 0.125}])

    def test_standalone_reports_print_to_stderr(self):
        p = run_python("""
            import xpscale
            xpscale.trial(argv=[]).report(step=0, loss=float("nan"), n=3)
        """, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stderr.strip()), {"step": 0, "loss": None, "n": 3})

    def test_checkpoint_marker_is_the_cpp_one_and_resume_reads_it(self):
        ckpt = os.path.join(self.tmp, "trial-ckpt")
        env = dict(self.env, XPSCALE_TRIAL_ID="1", XPSCALE_CHECKPOINT_DIR=ckpt,
                   XPSCALE_PARAMS="{}")
        p = run_python("""
            import xpscale
            t = xpscale.trial()
            assert t.resume_step() == -1, t.resume_step()
            t.checkpoint_saved(5)
            print(t.resume_step())
        """, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "5")
        with open(os.path.join(ckpt, "xpscale_checkpoint.json")) as f:
            self.assertEqual(json.load(f), {"step": 5})
        # The standard-library reader and the C++ one agree.
        self.assertEqual(xpscale.report.resume_step(ckpt), 5)
        self.assertEqual(native.read_checkpoint_step(ckpt), 5)

    def test_standalone_checkpoints_go_to_the_working_directory(self):
        p = run_python("""
            import xpscale
            t = xpscale.trial(argv=[])
            t.checkpoint_saved(2)
            print(t.checkpoint_dir, t.resume_step())
        """, env=self.env, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split(), [os.path.join(os.path.realpath(self.tmp), "checkpoint"), "2"])

    def test_a_torn_marker_is_an_xpscale_error_naming_the_file(self):
        d = os.path.join(self.tmp, "torn")
        os.makedirs(d)
        with open(os.path.join(d, "xpscale_checkpoint.json"), "w") as f:
            f.write('{"step": "three"}')
        with self.assertRaises(native.Error) as e:
            native.read_checkpoint_step(d)
        self.assertIn(os.path.join(d, "xpscale_checkpoint.json"), str(e.exception))
        self.assertIsInstance(e.exception, RuntimeError)

    def test_both_readers_refuse_a_negative_step(self):
        d = os.path.join(self.tmp, "negative")
        os.makedirs(d)
        with open(os.path.join(d, "xpscale_checkpoint.json"), "w") as f:
            f.write('{"step": -7}')
        with self.assertRaises(native.Error):
            native.read_checkpoint_step(d)
        with self.assertRaises(ValueError):
            xpscale.report.resume_step(d)

    def test_argv_values_are_typed_as_wandb_writes_them(self):
        t = xpscale.trial(argv=["--devices=0,1", "--n=1_000", "--s=\"q\"", "--f=1e-3",
                                "--m={\"a\": 1}", "--b=false"])
        self.assertEqual(t.params, {"devices": "0,1", "n": "1_000", "s": '"q"', "f": 0.001,
                                    "m": {"a": 1}, "b": False})

    def test_errors_of_the_native_part_are_xpscale_errors(self):
        self.assertIs(xpscale.Error, native.Error)
        self.assertTrue(issubclass(xpscale.Error, RuntimeError))

    def test_bad_steps_are_refused(self):
        t = xpscale.trial(argv=[])
        for bad in (-1, True, 1.5):
            with self.assertRaises((ValueError, TypeError)):
                t.checkpoint_saved(bad)


if __name__ == "__main__":
    unittest.main()

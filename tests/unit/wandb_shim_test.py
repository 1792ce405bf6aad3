"""xpscale's wandb shim (python/xpscale/_wandb/wandb, xpscale.wandb_shim) as
a W&B script meets it: each test runs a small script in a fresh
/usr/bin/python3 with the shim's directory first on PYTHONPATH, as the
launcher starts an external trial, and reads what reached xpscale (the
JSON lines on XPSCALE_METRICS_FD). Run by ctest with PYTHONPATH set to the
build's package.

The real wandb is not in Debian and this machine has no PyPI, so the
passthrough tests use a small stand-in `wandb` package written to a temp
dir: it has the parts of W&B's API the wrapper touches (init returning a
Run whose log records its calls, wandb.log rebound to run.log by init, the
sweep parameters read from WANDB_SWEEP_PARAM_PATH).
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

PYTHON_DIR = os.path.dirname(os.path.dirname(xpscale.__file__))
SHIM_DIR = os.path.join(PYTHON_DIR, "xpscale", "_wandb")

# The stand-in for the real wandb (see the module's doc). Its init reads the
# agent's params file the way wandb_setup/config_util do: "wandb_version: 1"
# then {name: {value: v}}; each value line here is JSON (what the shim writes).
STAND_IN = '''
import json, os
calls = []
MODE = os.environ.get("WANDB_MODE")

class Run:
    def __init__(self, config):
        self.config = config
        self.id = "standin"
    def log(self, data, step=None, commit=None):
        calls.append(("log", dict(data), step, commit))
    def finish(self):
        calls.append(("finish",))

def _sweep_params():
    path = os.environ.get("WANDB_SWEEP_PARAM_PATH")
    if not path:
        return {}
    out, key = {}, None
    for line in open(path):
        line = line.rstrip("\\n")
        if line.startswith("  value: "):
            out[key] = json.loads(line[len("  value: "):])
        elif line.endswith(":"):
            key = json.loads(line[:-1])
    return out

def _preinit_log(*args, **kwargs):
    raise RuntimeError("You must call wandb.init() before wandb.log()")

log = _preinit_log
run = None

def init(project=None, config=None, **kwargs):
    global run, log
    merged = dict(config or {})
    merged.update(_sweep_params())
    run = Run(merged)
    log = run.log  # as W&B's init rebinds wandb.log
    return run

def finish():
    if run is not None:
        run.finish()
'''


class WandbShimTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="xpscale-wandb-")
        self.metrics_path = os.path.join(self.tmp, "metrics.jsonl")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("XPSCALE_", "WANDB_")) and k not in ("RANK",)}
        self.env["PYTHONPATH"] = SHIM_DIR + os.pathsep + PYTHON_DIR

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def trial(self, code, params=None, check=True, **env):
        """Runs code as trial 7 with params; (reports, completed process)."""
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        run_env = dict(self.env, XPSCALE_TRIAL_ID="7", XPSCALE_ATTEMPT="1",
                       XPSCALE_TRIAL_DIR=self.tmp, XPSCALE_METRICS_FD=str(fd),
                       XPSCALE_PARAMS=json.dumps(params or {}), **env)
        try:
            p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=run_env,
                               cwd=self.tmp, capture_output=True, text=True, timeout=60,
                               pass_fds=(fd,))
        finally:
            os.close(fd)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.metrics_path) as f:
            return [json.loads(line) for line in f], p

    def stand_in(self):
        """A directory holding the stand-in wandb; goes after the shim."""
        d = os.path.join(self.tmp, "site")
        os.makedirs(os.path.join(d, "wandb"))
        with open(os.path.join(d, "wandb", "__init__.py"), "w") as f:
            f.write(STAND_IN)
        return d

    # --- config ---------------------------------------------------------

    def test_config_holds_sweep_params_nested_over_init_defaults(self):
        reports, p = self.trial("""
            import json, wandb
            assert wandb.run is None
            run = wandb.init(project="p", config={"lr": 0.01, "epochs": 3, "optimizer": {"m": 1}})
            c = wandb.config
            print(json.dumps([c.lr, c["lr"], run.config.lr, c.get("epochs"), c.get("nope", 5),
                              c.optimizer["lr"], c["optimizer"]["lr"], "lr" in c, "x" in c,
                              sorted(c.keys()), c.as_dict()["epochs"], run.id, run.name]))
            """, params={"lr": 0.1, "optimizer.lr": 0.5})
        self.assertEqual(json.loads(p.stdout), [
            0.1, 0.1, 0.1, 3, 5, 0.5, 0.5, True, False, ["epochs", "lr", "optimizer"], 3,
            "7", "trial-7"])

    def test_nested_params_env_is_taken_as_given(self):
        # XPSCALE_PARAMS_NESTED wins: a name with a dot stays one key.
        _, p = self.trial("""
            import json, wandb
            wandb.init()
            print(json.dumps(wandb.config.as_dict()))
            """, params={"a.b": 1}, XPSCALE_PARAMS_NESTED='{"a.b": 1, "opt": {"lr": 2}}')
        self.assertEqual(json.loads(p.stdout), {"a.b": 1, "opt": {"lr": 2}})

    def test_update_of_a_sweep_param_keeps_the_sweeps_value(self):
        _, p = self.trial("""
            import wandb
            wandb.init(config={"lr": 0.01})
            wandb.config.update({"lr": 9, "extra": 1})
            wandb.config.batch = 32
            print(wandb.config.lr, wandb.config.extra, wandb.config["batch"])
            """, params={"lr": 0.1})
        self.assertEqual(p.stdout.split(), ["0.1", "1", "32"])
        self.assertIn("'lr' was locked by the sweep", p.stderr)

    def test_config_survives_copy_and_pickle(self):
        _, p = self.trial("""
            import copy, pickle, wandb
            wandb.init(config={"opt": {"lr": 1}})
            c = wandb.config
            print(copy.deepcopy(c).opt["lr"], pickle.loads(pickle.dumps(c)).opt)
            """)
        self.assertEqual(p.stdout.strip(), "1 {'lr': 1}")

    # --- log ------------------------------------------------------------

    def test_each_log_is_a_report_at_wandbs_step(self):
        reports, _ = self.trial("""
            import wandb
            wandb.init()
            for e in range(3):
                wandb.log({"val_loss": 1.0 / (e + 1), "epoch": e})
            wandb.finish()
            """)
        self.assertEqual(reports, [{"step": e, "val_loss": 1.0 / (e + 1), "epoch": e}
                                   for e in range(3)])

    def test_the_three_equivalent_forms_of_wandbs_docs_give_the_same_reports(self):
        # W&B's run.log documentation: normal usage, commit=False, explicit step.
        forms = {
            "normal": """
                run.log({"train-loss": 0.5, "accuracy": 0.8})
                run.log({"train-loss": 0.4, "accuracy": 0.9})""",
            "commit": """
                run.log({"train-loss": 0.5}, commit=False)
                run.log({"accuracy": 0.8})
                run.log({"train-loss": 0.4}, commit=False)
                run.log({"accuracy": 0.9})""",
            "step": """
                current_step = 0
                run.log({"train-loss": 0.5}, step=current_step)
                run.log({"accuracy": 0.8}, step=current_step)
                current_step += 1
                run.log({"train-loss": 0.4}, step=current_step)
                run.log({"accuracy": 0.9}, step=current_step, commit=True)""",
        }
        want = [{"step": 0, "train-loss": 0.5, "accuracy": 0.8},
                {"step": 1, "train-loss": 0.4, "accuracy": 0.9}]
        for name, body in forms.items():
            with self.subTest(name):
                reports, _ = self.trial("import wandb\nrun = wandb.init()\n" +
                                        textwrap.dedent(body).strip() + "\nrun.finish()\n")
                self.assertEqual(reports, want)

    def test_a_lower_step_is_ignored_and_finish_commits_what_is_pending(self):
        reports, p = self.trial("""
            import wandb
            wandb.init()
            wandb.log({"a": 1}, step=5)
            wandb.log({"b": 2}, step=3)
            wandb.log({"c": 3}, step=8)
            wandb.log({"d": 4}, commit=False)
            """)  # no finish(): the exit commits, as W&B's does
        self.assertEqual(reports, [{"step": 5, "a": 1}, {"step": 8, "c": 3, "d": 4}])
        self.assertIn("less than the current step", p.stderr)

    def test_only_numbers_are_reported_nested_dicts_by_dotted_name(self):
        reports, _ = self.trial("""
            import wandb
            run = wandb.init()
            run.log({"img": wandb.Image(None), "tbl": wandb.Table(columns=["a"]),
                     "hist": wandb.Histogram([1, 2]), "note": "text", "flag": True,
                     "val": {"loss": 0.25}, "n": 3})
            run.log({"only": "text"})
            run.log({"x": 1.5})
            """)
        self.assertEqual(reports, [{"step": 0, "val.loss": 0.25, "n": 3}, {"step": 2, "x": 1.5}])

    def test_summary_keeps_last_values_and_define_metric_min(self):
        _, p = self.trial("""
            import json, wandb
            run = wandb.init()
            wandb.define_metric("val_loss", summary="min")
            for v in (3.0, 1.0, 2.0):
                wandb.log({"val_loss": v, "acc": -v})
            run.summary["best"] = 7
            print(json.dumps({"run": dict(run.summary), "module": dict(wandb.summary)}))
            """)
        out = json.loads(p.stdout)
        self.assertEqual(out["run"], {"val_loss": 1.0, "acc": -2.0, "best": 7})
        self.assertEqual(out["module"], out["run"])

    def test_a_sweep_metric_set_only_in_the_summary_is_reported_at_finish(self):
        # W&B's sweep reads the metric from the run's summary.
        reports, _ = self.trial("""
            import wandb
            run = wandb.init()
            for epoch in range(3):
                wandb.log({"train_loss": 1.0 / (epoch + 1)})
            run.summary["best_val_acc"] = 0.75
            wandb.finish()
            """, XPSCALE_METRIC="best_val_acc")
        self.assertEqual([r.get("best_val_acc") for r in reports], [None, None, None, 0.75])
        self.assertGreater(reports[-1]["step"], reports[-2]["step"])  # a step of its own
        # A logged metric is not reported again from the summary.
        reports, _ = self.trial("""
            import wandb
            run = wandb.init()
            wandb.log({"val_acc": 0.5})
            run.summary["val_acc"] = 0.9
            wandb.finish()
            """, XPSCALE_METRIC="val_acc")
        self.assertEqual([r["val_acc"] for r in reports], [0.5])

    def test_logs_of_a_forked_child_are_ignored(self):
        reports, p = self.trial("""
            import os, wandb
            wandb.init()
            wandb.log({"loss": 1.0})
            pid = os.fork()
            if pid == 0:
                wandb.log({"loss": 7.0})
                os._exit(0)
            os.waitpid(pid, 0)
            wandb.log({"loss": 0.5})
            wandb.finish()
            """)
        self.assertEqual([(r["step"], r["loss"]) for r in reports], [(0, 1.0), (1, 0.5)])
        self.assertIn("child process", p.stderr)

    # --- the rest of the API ----------------------------------------------

    def test_agent_calls_the_function_once_and_the_placeholders_are_harmless(self):
        reports, p = self.trial("""
            import wandb
            calls = []
            def train():
                with wandb.init(project="p", config={"lr": 0.01}) as run:
                    calls.append(wandb.config.lr)
                    wandb.watch(object()); wandb.save("x"); wandb.alert(title="t", text="x")
                    run.log_artifact(wandb.Artifact("a", type="model"))
                    wandb.log({"loss": wandb.config.lr})
            wandb.login()
            sweep_id = wandb.sweep({"method": "grid"}, project="p")
            assert isinstance(sweep_id, str) and sweep_id
            wandb.agent(sweep_id, train, count=5)
            wandb.agent(sweep_id)  # no function: nothing to do under xpscale
            print(calls, wandb.run)
            """, params={"lr": 0.2})
        self.assertEqual(p.stdout.strip(), "[0.2] None")
        self.assertEqual(reports, [{"step": 0, "loss": 0.2}])

    def test_init_again_returns_the_active_run_unless_reinit(self):
        _, p = self.trial("""
            import wandb
            a = wandb.init(); b = wandb.init(); c = wandb.init(reinit=True)
            print(a is b, a is c, wandb.run is c)
            """)
        self.assertEqual(p.stdout.split(), ["True", "False", "True"])

    def test_by_hand_reports_print_to_stderr(self):
        env = {k: v for k, v in self.env.items()}
        p = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import wandb
            run = wandb.init(config={"lr": 0.3})
            wandb.log({"loss": wandb.config.lr})
            wandb.finish()
            """)], env=env, cwd=self.tmp, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('{"step":0,"loss":0.3}', p.stderr)

    # --- modes --------------------------------------------------------------

    def test_passthrough_calls_the_real_wandb_and_reports_to_xpscale(self):
        site = self.stand_in()
        self.env["PYTHONPATH"] += os.pathsep + site
        for mode in ("passthrough", "auto"):
            with self.subTest(mode):
                reports, p = self.trial("""
                    import json, wandb
                    run = wandb.init(project="p", config={"lr": 0.01, "epochs": 2})
                    for e in range(run.config["epochs"]):
                        wandb.log({"val_loss": run.config["lr"] * e, "epoch": e})
                    run.log({"extra": 1}, step=5)
                    wandb.finish()
                    print(json.dumps({"file": wandb.__file__, "calls": wandb.calls,
                                      "mode": wandb.MODE, "config": run.config}))
                    """, params={"lr": 0.5, "optimizer.beta": 0.9}, XPSCALE_WANDB=mode,
                    WANDB_MODE="offline")
                out = json.loads(p.stdout)
                self.assertTrue(out["file"].startswith(site), out["file"])
                # The stand-in's log got every call, as the script made it.
                self.assertEqual(out["calls"], [
                    ["log", {"val_loss": 0.0, "epoch": 0}, None, None],
                    ["log", {"val_loss": 0.5, "epoch": 1}, None, None],
                    ["log", {"extra": 1}, 5, None], ["finish"]])
                self.assertEqual(out["mode"], "offline")
                # wandb.init() saw the sweep's params as W&B's agent gives them.
                self.assertEqual(out["config"], {"lr": 0.5, "epochs": 2,
                                                 "optimizer": {"beta": 0.9}})
                self.assertEqual(reports, [{"step": 0, "val_loss": 0.0, "epoch": 0},
                                           {"step": 1, "val_loss": 0.5, "epoch": 1},
                                           {"step": 5, "extra": 1}])

    def test_shim_mode_ignores_an_installed_wandb(self):
        self.env["PYTHONPATH"] += os.pathsep + self.stand_in()
        reports, p = self.trial("""
            import wandb
            wandb.init(); wandb.log({"loss": 1}); print(wandb.__version__)
            """, XPSCALE_WANDB="shim")
        self.assertIn("xpscale", p.stdout)
        self.assertEqual(reports, [{"step": 0, "loss": 1}])

    def test_passthrough_without_a_real_wandb_is_a_clear_import_error(self):
        _, p = self.trial("import wandb", check=False, XPSCALE_WANDB="passthrough")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("wandb: passthrough", p.stderr)
        self.assertIn("no wandb is installed besides xpscale's shim", p.stderr)


if __name__ == "__main__":
    unittest.main()

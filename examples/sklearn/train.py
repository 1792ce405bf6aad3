#!/usr/bin/env python3
"""A scikit-learn trial: an RBF support-vector classifier on the 8x8 digits
that scikit-learn ships (no download), one rank per trial, many trials at
once. Reports the cross-validated accuracy and the held-out test accuracy.

Under xpscale the parameters come from the sweep (examples/sweeps/
sklearn_digits.yaml); by hand, from the command line:
  /usr/bin/python3 examples/sklearn/train.py --C=10 --gamma=0.001
"""
import sys
import time

import xpscale  # scripts/setup puts the package on /usr/bin/python3's path

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score, train_test_split
    from sklearn.svm import SVC
except ImportError as e:
    sys.exit(f"train.py: {sys.executable}: {e}; install Debian's python3-sklearn and run "
             "this script with /usr/bin/python3")


def main():
    trial = xpscale.trial({"C": 1.0, "gamma": 0.001, "folds": 3, "seed": 0})
    p = trial.params
    if p["C"] <= 0 or p["gamma"] <= 0:
        print(f"train.py: C and gamma must be > 0, got C={p['C']} gamma={p['gamma']}",
              file=sys.stderr)
        sys.exit(2)
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25,
                                                        random_state=p["seed"], stratify=y)
    model = SVC(C=p["C"], gamma=p["gamma"])
    start = time.monotonic()
    scores = cross_val_score(model, x_train, y_train, cv=p["folds"])
    model.fit(x_train, y_train)
    trial.report(step=0, cv_accuracy=float(scores.mean()), cv_std=float(scores.std()),
                 test_accuracy=float(model.score(x_test, y_test)),
                 fit_s=time.monotonic() - start)


if __name__ == "__main__":
    main()

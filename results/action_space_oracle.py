"""What the synthetic faces' resting looks are worth with perfect perception.

    python results/action_space_oracle.py [--train-people 48] [--seed 7]

No images: each expression image is its vector of action units as the generator draws it
(the person's resting offset, their gains, the class's delta at a random intensity, the
per-image wobble). A logistic regression of the 8 classes is trained on ``--train-people``
people and scored on 400 others, once on the action units alone and once with the person's
resting look (one-hot) beside them: the most any knowledge of who-looks-how can add, for a
reader that sees the action units exactly. Needs scikit-learn.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from tfe.data import synthetic as S


def actions(faces, people, per_class, rng):
    """(action units [n, A], class [n], resting look one-hot [n, L]) of ``people``."""
    x, y, looks = [], [], []
    smirks = [S.ACTIONS.index("smirk_left"), S.ACTIONS.index("smirk_right")]
    for k in people:
        person = faces.identity(k)
        cls = np.repeat(np.arange(len(S.CLASSES)), per_class)
        amount = rng.uniform(*S._EXPRESSION_INTENSITY, len(cls))
        a = (person.neutral_actions + person.gains * S.EXPRESSION_DELTAS[cls] * amount[:, None]
             + rng.normal(0.0, S._MICRO_NOISE, (len(cls), len(S.ACTIONS))))
        a[:, smirks] = np.sort(a[:, smirks], axis=1)  # which side smirks says nothing
        x.append(np.clip(a, *S._ACTION_RANGE))
        y.append(cls)
        looks += [S.RESTING_LOOKS.index(person.resting)] * len(cls)
    return np.concatenate(x), np.concatenate(y), np.eye(len(S.RESTING_LOOKS))[looks]


def main(argv=None) -> int:
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-people", type=int, default=48)
    ap.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    a = ap.parse_args(argv)
    faces, rng = S.SyntheticFaces(seed=a.seed), np.random.default_rng(1)
    xtr, ytr, ltr = actions(faces, range(a.train_people), 4, rng)
    xte, yte, lte = actions(faces, range(1000, 1400), 2, rng)
    for name, train, test in (("action units alone", xtr, xte),
                              ("with the resting look", np.c_[xtr, ltr], np.c_[xte, lte])):
        model = LogisticRegression(max_iter=3000, C=10).fit(train, ytr)
        print(f"{name}: {100 * model.score(test, yte):.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

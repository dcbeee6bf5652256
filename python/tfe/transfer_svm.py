"""The paper's transfer baseline (its Table 5, after its reference [15]): the identity
feature alone, frozen, into a linear SVM that classifies expressions.

It asks how much expression an identity network sees on its own, without any expression
training of the network: DeepID's 160-d feature (with the normaliser it was trained with)
and, given a teacher cache, the teacher's descriptor of the same image. Features are
standardised on the training split; C is chosen on validation accuracy; the test split is
scored once, for that C. Needs scikit-learn (the ``svm`` extra); without it the stage is
skipped and the results say so.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import models
from .teacher_features import teacher_descriptors
from .train import batched_forward

C_GRID = (0.001, 0.01, 0.1, 1.0)


def linear_svm(train, val, test, c_grid=C_GRID, seed=0):
    """``train``/``val``/``test``: (features [N, D], labels [N]); ``test`` may be None.
    Returns {"C", "val_acc", "test_acc", "test_predictions"} for the C best on validation."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    scaler = StandardScaler().fit(train[0])
    xs = {k: None if v is None else scaler.transform(v[0]) for k, v in
          (("train", train), ("val", val), ("test", test))}
    best = None
    for c in c_grid:
        svm = LinearSVC(C=c, dual=False, max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            # a C that does not converge in max_iter is still a valid, if weaker, candidate
            warnings.simplefilter("ignore", ConvergenceWarning)
            svm.fit(xs["train"], train[1])
        acc = 100.0 * float((svm.predict(xs["val"]) == val[1]).mean())
        if best is None or acc > best[1]:
            best = (c, acc, svm)
    c, val_acc, svm = best
    out = {"C": c, "val_acc": val_acc, "test_acc": None, "test_predictions": None}
    if test is not None and len(test[1]):
        pred = svm.predict(xs["test"])
        out.update(test_acc=100.0 * float((pred == test[1]).mean()), test_predictions=pred)
    return out


def transfer_svm_runs(splits, identity_state, num_identities, identity_normalizer, p, log=print):
    """The transfer baseline of one split for every identity feature the run has.
    Returns {feature name: result} or {"skipped": reason}."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        log("transfer baseline (identity feature + linear SVM) skipped: scikit-learn is not "
            "installed (pip install scikit-learn)")
        return {"skipped": "scikit-learn not installed"}
    deepid = models.DeepID(num_identities, input_size=splits["train"].images.shape[-1])
    deepid.load_state_dict(identity_state)
    deepid.to(p.device)
    features = {"deepid": lambda s: batched_forward(deepid.features, s.images,
                                                    identity_normalizer)}
    if p.identity_teacher:
        features["teacher"] = lambda s: teacher_descriptors(s, p.identity_teacher, s.name)[0]
    results = {}
    for name, describe in features.items():
        data = {k: None if splits.get(k) is None else (describe(splits[k]), splits[k].labels)
                for k in ("train", "val", "test")}
        res = linear_svm(data["train"], data["val"], data["test"])
        test = "" if res["test_acc"] is None else f", test {res['test_acc']:.1f} %"
        log(f"[transfer_svm] {name} feature: C {res['C']:g}, validation "
            f"{res['val_acc']:.1f} %{test}")
        results[name] = res
    return results

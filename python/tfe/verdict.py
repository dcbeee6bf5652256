"""What a run shows, in plain words: did identity help, and had every stage stopped improving?

The paper's claim is that the *pre-trained* identity branch makes expression recognition
better. Two controls separate that from what else the joint stage brings: the baseline
trained for the joint stage's extra epochs (more training) and the joint model with an
untrained identity branch (a bigger model, a fresh head). Identity helps only where TFE-JL
beats both, split by split (seed or fold) on the same test images; the verdict says so,
or says that it did not.

A stage has reached its plateau when its last fifth of epochs did not raise the best
validation accuracy by more than ``PLATEAU_POINTS``: a stage still improving there would
make every later comparison one of under-trained models.
"""

from __future__ import annotations

import numpy as np

PLATEAU_POINTS = 1.0  # validation accuracy points (on a few hundred images: ~2-3 images)


def plateau(history) -> dict | None:
    """{"flat": bool, "gain_last_fifth": points} for one stage's epoch history (rows with
    "val_acc"), or None when it has fewer than 5 epochs (a fifth would be under one)."""
    acc = [row["val_acc"] for row in history or [] if row.get("val_acc") is not None]
    if len(acc) < 5:
        return None
    tail = max(1, len(acc) // 5)
    gain = max(acc[-tail:]) - max(acc[:-tail])
    return {"flat": bool(gain <= PLATEAU_POINTS), "gain_last_fifth": float(max(gain, 0.0))}


def stage_plateaus(per_split) -> dict:
    """Per stage name, per split: ``plateau`` of its history (None where not measured); a
    shared identity stage has one entry."""
    stages = {"identity": lambda r: r["identity"].get("history"),
              "emotion": lambda r: r["baseline"]["history"],
              "joint": lambda r: r["tfe_jl"]["history"]}
    for name in ("baseline_more_epochs", "tfe_random_identity"):
        stages[name] = lambda r, n=name: (r.get("controls") or {}).get(n, {}).get("history")
    out = {name: [plateau(get(r)) for r in per_split] for name, get in stages.items()}
    # One identity network shared by every split (real data; the synthetic default's seeds)
    # is one stage, not one per split: counted once.
    histories = [stages["identity"](r) for r in per_split]
    if len(histories) > 1 and histories[0] and all(h == histories[0] for h in histories):
        out["identity"] = out["identity"][:1]
    return out


def identity_verdict(doc) -> dict | None:
    """TFE-JL minus each control, per split, and whether identity helped: TFE-JL above
    both controls in every split. None without controls."""
    controls = doc.get("controls") or {}
    tfe_jl = doc.get("tfe_jl")
    if tfe_jl is None or not all(controls.get(k) for k in ("baseline_more_epochs",
                                                             "tfe_random_identity")):
        return None
    diffs = {}
    for name, entry in controls.items():
        pairs = [(a, b) for a, b in zip(tfe_jl["per_fold"], entry["per_fold"])
                 if a is not None and b is not None]
        diffs[name] = [float(a - b) for a, b in pairs]
    if not all(diffs.values()):
        return None
    against_best = [min(d) for d in zip(*diffs.values())]
    return {"tfe_jl_minus": diffs,
            "tfe_jl_minus_better_control": against_best,
            "helped_in": int(sum(d > 0 for d in against_best)),
            "splits": len(against_best),
            "helped": bool(all(d > 0 for d in against_best)),
            "mean_gain_over_better_control": float(np.mean(against_best))}


def verdict_lines(doc, unit) -> list:
    """The plain-words lines of the results table."""
    lines = []
    v = doc.get("identity_verdict")
    if v:
        per = ", ".join(f"{d:+.1f}" for d in v["tfe_jl_minus_better_control"])
        if v["helped"]:
            lines.append(f"identity helped: TFE-JL beats both controls in every {unit} "
                         f"(by {per} points over the better control)")
        else:
            lines.append(f"identity did NOT help here: TFE-JL beats both controls in "
                         f"{v['helped_in']} of {v['splits']} {unit}s (TFE-JL minus the better "
                         f"control: {per} points): a control without identity knowledge "
                         "(more training, or the same model with an untrained identity "
                         "branch) does as well")
    still = [f"{stage} ({sum(p is not None and not p['flat'] for p in per)}/{len(per)})"
             for stage, per in (doc.get("plateau") or {}).items()
             if any(p is not None and not p["flat"] for p in per)]
    if still:
        lines.append("still improving in the last fifth of their epochs (validation best up "
                     f"by more than {PLATEAU_POINTS:g} point): " + ", ".join(still) +
                     "; more epochs may change the comparison")
    elif doc.get("plateau"):
        lines.append("every stage reached its plateau (validation best flat over the last "
                     "fifth of its epochs)")
    return lines

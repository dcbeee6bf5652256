"""The run's plain-words verdict: identity helped only where TFE-JL beats both controls in
every split; a stage is flat when its last fifth of epochs did not lift the best validation
accuracy by more than a point."""

import json

from tfe.verdict import identity_verdict, plateau, stage_plateaus, verdict_lines


def _history(accs):
    return [{"epoch": i + 1, "val_acc": a} for i, a in enumerate(accs)]


def test_plateau_compares_the_last_fifth_with_the_epochs_before():
    assert plateau(_history([10, 20, 30, 40])) is None  # under 5 epochs: not measured
    flat = plateau(_history([10, 40, 50, 50.5, 49, 50, 50.9, 50, 51.4, 50.2]))
    assert flat["flat"] and abs(flat["gain_last_fifth"] - 0.5) < 1e-9
    rising = plateau(_history([10, 20, 30, 40, 45, 50, 55, 60, 65, 70]))
    assert rising == {"flat": False, "gain_last_fifth": 10.0}
    falling = plateau(_history([10, 60, 50, 40, 30]))  # a drop counts as no gain
    assert falling == {"flat": True, "gain_last_fifth": 0.0}


def _doc(tfe_jl, more, untrained):
    def entry(v):
        return {"per_fold": v, "test_acc": sum(v) / len(v)}
    return {"tfe_jl": entry(tfe_jl), "controls": {"baseline_more_epochs": entry(more),
                                                  "tfe_random_identity": entry(untrained)}}


def test_identity_helps_only_above_both_controls_in_every_split():
    v = identity_verdict(_doc([60, 62, 58], [50, 55, 54], [57, 60, 55]))
    assert v["helped"] and v["helped_in"] == 3 and v["splits"] == 3
    assert v["tfe_jl_minus_better_control"] == [3, 2, 3]
    v = identity_verdict(_doc([60, 62, 58], [50, 55, 54], [57, 63, 55]))
    assert not v["helped"] and v["helped_in"] == 2
    assert v["tfe_jl_minus"]["tfe_random_identity"] == [3, -1, 3]
    assert v["tfe_jl_minus_better_control"] == [3, -1, 3]
    json.dumps(v)  # results.json takes it as it is
    no_controls = {"tfe_jl": {"per_fold": [60]}, "controls": None}
    assert identity_verdict(no_controls) is None


def test_verdict_lines_say_it_plainly():
    doc = _doc([60, 62], [50, 63], [57, 60])
    doc["identity_verdict"] = identity_verdict(doc)
    doc["plateau"] = {"emotion": [{"flat": False, "gain_last_fifth": 4.0}, None],
                      "joint": [{"flat": True, "gain_last_fifth": 0.0}] * 2}
    identity, stages = verdict_lines(doc, "seed")
    assert "identity did NOT help here" in identity and "1 of 2 seeds" in identity
    assert "+3.0, -1.0" in identity
    assert "still improving" in stages and "emotion (1/2)" in stages and "joint" not in stages
    doc["plateau"] = {"joint": [{"flat": True, "gain_last_fifth": 0.0}]}
    doc["identity_verdict"] = identity_verdict(_doc([60], [50], [57]))
    text = "\n".join(verdict_lines(doc, "fold"))
    assert "identity helped" in text and "+3.0" in text and "reached its plateau" in text


def test_a_shared_identity_stage_is_counted_once():
    rising = [{"val_acc": float(v)} for v in (10, 20, 30, 40, 50)]
    split = {"identity": {"history": rising}, "baseline": {"history": rising},
             "tfe_jl": {"history": rising}, "controls": None}
    shared = stage_plateaus([split, split, split])
    assert len(shared["identity"]) == 1 and len(shared["emotion"]) == 3
    own = dict(split, identity={"history": rising[:-1] + [{"val_acc": 60.0}]})
    assert len(stage_plateaus([split, own])["identity"]) == 2

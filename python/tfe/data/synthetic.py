"""Procedural grayscale faces (48x48 by default) with identities, resting looks and 8
expressions.

What: ``SyntheticFaces`` draws people (face geometry, skin, hair, and a *resting look*) and
renders them with one of the paper's 8 expression classes, with photo-like nuisance
variation, vectorised in NumPy. It makes ``tfe-train`` run anywhere with no download.

Why this design: the paper's argument (Sec. 1, Fig. 1, Table 6) is that some people's
neutral face already looks a little sad or angry, so *who* it is helps to read *what* they
feel. A generator where expression is only an absolute appearance would make identity
useless; one where identity decides everything would make it trivial. So here:

* Each person has a **resting look**: an offset of the action controls that their neutral
  face already shows. 25 % of people have none (only small random offsets); 75 % have a
  clear one: sad 20 %, angry 20 %, happy 15 %, contemptuous 10 %, tired (drooping lids)
  10 %, at strength 0.5-0.9 of the full expression, i.e. about a weak-to-moderate
  expression of another person. Their neutral is therefore ambiguous on its own: given the
  action units themselves (perfect perception), a logistic regression of the 8 classes
  trained on 48 people scores 86 % on others without their look and 99.7 % with it
  (results/action_space_oracle.py).
* The resting look comes with a **face build** (``_RESTING_BUILDS``): the third of its
  range that each of a few identity traits (face width and length, jaw, eye slant, mouth
  width) is drawn from, as structural resemblance makes some neutral faces look sad or
  angry. The build is visible in every expression, so it tells, from any single image, how
  that kind of face looks at rest: the knowledge an identity network can bring. Identity
  and expression people are drawn from the same population.
* Expressions are **deltas relative to the person's neutral** (FACS-like action units,
  ``ACTIONS``), scaled by a per-image intensity of 0.5-1.0 and by per-person gains
  (log-normal, sigma 0.2: some people smile broadly, others barely), so the *change* from
  the person's own neutral is clear while the absolute appearance overlaps across people.
* Face **geometry** varies per person too (brow height, eye opening, mouth width, ...), and
  some of it mimics expressions (low-set brows look like brow lowering), as in real faces.
* Per-image **nuisance**: in-plane rotation +-10 deg, shift +-3 px, scale +-8 %, slight yaw,
  gaze, lighting gradient, brightness/contrast, background, blur, Gaussian noise: the range
  of aligned-but-not-perfect crops (CK+/FER+ after face detection), and the same range as the
  training augmentation, so augmentation neither hides nor invents variation.

Action units and the expression prototypes (full intensity) follow the EMFACS prototypes:
anger = brow lowerer + knit (AU4) + upper-lid raise (AU5) + lid tightener (AU7) + lip
press (AU23/24) + chin raise (AU17); contempt = one-sided lip-corner pull (AU14/R12);
disgust = nose wrinkle (AU9) + upper-lip raise (AU10) + AU4/AU7 + corner depress (AU15);
fear = inner+outer brow raise + knit (AU1+2+4) + AU5 + lip stretch (AU20) + lips part (AU25/26);
happy = cheek raise (AU6) + lip-corner pull (AU12) + lips part; sadness = inner brow raise
(AU1) + knit + drooping lids + corner depress (AU15) + chin raise (AU17); surprise = AU1+2 +
AU5 + jaw drop (AU26/27).

Rendering: every shape is an anti-aliased signed-distance field evaluated on the pixel
grid mapped back into a canonical face frame (x, y in [-1, 1] over the crop, y down), one
[n, H, W] array per quantity for a chunk of images, so 10,000 faces take a few seconds on
one core. Geometry, parameters and noise of person k are drawn from a random stream seeded
by (seed, k) only, so person k is the same whatever else is generated, and a person's
images in a set depend only on (seed, set kind, k, images per person).

The numbers here were chosen for plausibility, by looking at contact sheets. The resting
looks' share and strength, the face builds and the face-shape ranges were then set from
probes and validation accuracies on development seeds (100-102), never on the test people
of the default run's seeds (0-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .imageset import ImageSet

__all__ = [
    "ACTIONS",
    "CLASSES",
    "EXPRESSION_DELTAS",
    "RESTING_LOOKS",
    "Identity",
    "SyntheticFaces",
    "default_splits",
]

CLASSES = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")

# Action-unit-like controls. 0 = the person's neutral; 1 = a full expression's amount.
ACTIONS = (
    "inner_brow_raise",  # AU1
    "outer_brow_raise",  # AU2 (negative: drooping outer brow)
    "brow_lower",  # AU4, vertical part
    "brow_knit",  # AU4, brows drawn together
    "upper_lid_raise",  # AU5 (negative: drooping lids)
    "lid_tighten",  # AU7
    "cheek_raise",  # AU6
    "nose_wrinkle",  # AU9
    "upper_lip_raise",  # AU10
    "lip_corner_pull",  # AU12
    "lip_corner_depress",  # AU15
    "smirk_left",  # AU14/L12, image-left corner only (contempt)
    "smirk_right",  # AU14/R12, image-right corner only
    "lip_stretch",  # AU20
    "lip_press",  # AU23/24
    "chin_raise",  # AU17
    "lips_part",  # AU25
    "jaw_drop",  # AU26/27
)
_A = {name: i for i, name in enumerate(ACTIONS)}


def _actions(**amounts: float) -> np.ndarray:
    v = np.zeros(len(ACTIONS), np.float32)
    for name, amount in amounts.items():
        v[_A[name]] = amount
    return v


# Full-intensity deltas from a person's neutral, one row per class in CLASSES order.
# Contempt is written with the right-side smirk; each image picks its side.
EXPRESSION_DELTAS = np.stack(
    [
        _actions(),
        _actions(brow_lower=1.0, brow_knit=0.9, upper_lid_raise=0.35, lid_tighten=0.8,
                 lip_press=1.0, chin_raise=0.4, lip_corner_depress=0.15),
        _actions(smirk_right=1.0, lid_tighten=0.15),
        _actions(nose_wrinkle=1.0, upper_lip_raise=1.0, brow_lower=0.6, brow_knit=0.3,
                 lid_tighten=0.5, cheek_raise=0.3, lip_corner_depress=0.35, chin_raise=0.35,
                 lips_part=0.2),
        _actions(inner_brow_raise=1.0, outer_brow_raise=0.6, brow_knit=0.7, upper_lid_raise=1.0,
                 lid_tighten=0.2, lip_stretch=1.0, lips_part=0.7, jaw_drop=0.25),
        _actions(cheek_raise=0.9, lip_corner_pull=1.0, lips_part=0.6),
        _actions(inner_brow_raise=1.0, brow_knit=0.4, upper_lid_raise=-0.45,
                 lip_corner_depress=1.0, chin_raise=0.7),
        _actions(inner_brow_raise=1.0, outer_brow_raise=1.0, upper_lid_raise=0.9, jaw_drop=1.0,
                 lips_part=1.0),
    ]
)
_CONTEMPT = CLASSES.index("contempt")

# Resting looks: name, probability, full-scale action offset (scaled by the person's strength).
RESTING_LOOKS = ("none", "sad", "angry", "happy", "contempt", "tired")
_RESTING_PROBS = np.array([0.25, 0.20, 0.20, 0.15, 0.10, 0.10])
_RESTING_VECTORS = {
    "none": _actions(),
    "sad": EXPRESSION_DELTAS[CLASSES.index("sadness")],
    "angry": EXPRESSION_DELTAS[CLASSES.index("anger")],
    # A closed-mouth smile: resting faces do not show teeth.
    "happy": _actions(cheek_raise=0.9, lip_corner_pull=1.0),
    "contempt": EXPRESSION_DELTAS[_CONTEMPT],  # side flipped per person
    "tired": _actions(upper_lid_raise=-1.0, outer_brow_raise=-0.5, lip_corner_depress=0.3),
}
_RESTING_STRENGTH = (0.5, 0.9)

# Face build of each resting look: the third of its range (see _GEOMETRY) each listed trait
# of such a person is drawn from (-1 bottom, 0 middle, +1 top); unlisted traits are uniform
# over the whole range. So a face's build tells which look its neutral has: the structural
# resemblance of some neutral faces to expressions (a long face with down-slanted eyes looks
# sad), which a network that has learned to describe faces (an identity network) can see
# in any expression.
_RESTING_BUILDS = {
    "none": {"face_w": 0, "face_h": 0, "jaw": 0, "eye_tilt": 0, "mouth_w": 0},
    "sad": {"face_w": -1, "face_h": +1, "jaw": +1, "eye_tilt": -1, "mouth_w": 0},
    "angry": {"face_w": +1, "face_h": -1, "jaw": -1, "eye_tilt": 0, "mouth_w": -1},
    "happy": {"face_w": +1, "face_h": +1, "jaw": -1, "eye_tilt": +1, "mouth_w": +1},
    "contempt": {"face_w": -1, "face_h": -1, "jaw": +1, "eye_tilt": 0, "mouth_w": -1},
    "tired": {"face_w": 0, "face_h": +1, "jaw": 0, "eye_tilt": -1, "eye_open": -1},
}
_RESTING_NOISE = 0.06  # everyone's neutral is a little off the population mean
_EXPRESSION_INTENSITY = (0.5, 1.0)  # of the full expression, per image (expression sets)
_GAIN_SIGMA = 0.2  # per-person, per-action expressiveness (log-normal)
_MICRO_NOISE = 0.04  # per-image wobble of every action (no two neutrals are identical)
_ACTION_RANGE = (-1.0, 1.8)

# Class mix of the identity (DeepID) set: web photos are mostly neutral or smiling.
_IDENTITY_CLASS_PROBS = np.array([0.30, 0.10, 0.05, 0.05, 0.05, 0.30, 0.10, 0.05])

# Per-person geometry, uniform in [low, high]; units: the crop spans [-1, 1] (1 = 24 px).
_GEOMETRY = (
    ("face_w", 0.64, 0.92),  # face oval half-width
    ("face_h", 0.82, 1.06),  # face oval half-height
    ("face_cy", 0.03, 0.11),  # oval centre (below the crop centre: forehead is cut)
    ("jaw", 0.0, 0.5),  # narrowing of the lower face: 0 round/square, 0.5 pointed
    ("eye_y", -0.24, -0.13),  # eye line height
    ("eye_dx", 0.27, 0.35),  # half the eye spacing
    ("eye_w", 0.115, 0.155),  # eye half-width
    ("eye_open", 0.045, 0.072),  # upper opening (lower is 0.65 of it)
    ("eye_tilt", -0.04, 0.05),  # outer corner up (+) or down
    ("iris_r", 0.05, 0.064),
    ("brow_gap", 0.12, 0.19),  # brow height above the eye line
    ("brow_thick", 0.022, 0.042),  # brow half-thickness at its inner end
    ("brow_arch", 0.0, 0.05),
    ("brow_len", 0.85, 1.15),
    ("nose_len", 0.30, 0.40),  # eye line to nostrils
    ("nose_w", 0.07, 0.115),
    ("mouth_dy", 0.20, 0.29),  # nostrils to mouth line
    ("mouth_w", 0.17, 0.28),  # mouth half-width
    ("lip_up", 0.022, 0.042),  # upper-lip thickness
    ("lip_lo", 0.032, 0.058),  # lower-lip thickness
    ("hairline", -0.80, -0.50),
    ("hair_curve", 0.0, 0.5),  # temples recede (+)
    ("hair_len", 0.0, 1.0),  # 0 short, 1 down to the shoulders
    ("skin", 0.42, 0.80),  # skin gray level
    ("contrast", 0.75, 1.25),  # how strongly folds and shadows show
    ("lip_tone", 0.62, 0.88),  # lip gray level relative to skin
    ("brow_tone", 0.22, 0.55),  # brow gray level relative to skin
    ("iris_tone", 0.06, 0.30),
)
_GEOMETRY_NAMES = tuple(g[0] for g in _GEOMETRY)
# Per-person values the renderer reads: the geometry plus the hair tone (drawn as a mixture).
_PERSON_FIELDS = _GEOMETRY_NAMES + ("hair_tone",)

_STREAM_IDENTITY, _STREAM_ID_SET, _STREAM_EXPR_SET = 101, 202, 303


@dataclass(frozen=True)
class Identity:
    """One synthetic person.

    Attributes:
        index: person index k (the random stream is seeded by (seed, k)).
        name: "synthNNNNN".
        geometry: per-person shape and tone parameters (see ``_GEOMETRY``), plus "hair_tone".
        resting: the resting look, one of RESTING_LOOKS.
        resting_strength: its strength as a fraction of the full expression (0 for "none").
        neutral_actions: float32 [len(ACTIONS)]: the action offsets of this person's neutral.
        gains: float32 [len(ACTIONS)]: per-action expressiveness multipliers.
        smirk_side: -1 (image left) or +1 (image right): the side this person smirks to.
    """

    index: int
    name: str
    geometry: dict
    resting: str
    resting_strength: float
    neutral_actions: np.ndarray
    gains: np.ndarray
    smirk_side: int


def _flip_smirk(v: np.ndarray) -> np.ndarray:
    """Swap the left/right smirk actions (axis -1)."""
    out = v.copy()
    out[..., _A["smirk_left"]] = v[..., _A["smirk_right"]]
    out[..., _A["smirk_right"]] = v[..., _A["smirk_left"]]
    return out


class SyntheticFaces:
    """Deterministic generator of synthetic expression and identity data.

    Args:
        seed: non-negative integer; everything generated is a function of it.
        size: output image side in pixels (the canonical face frame is resolution-free).
        jitter: scale of the per-image nuisance variation (pose, lighting, noise, blur,
            background); 1.0 is the default realism, 0.0 renders clean, centred faces.
        chunk: images rendered per vectorised pass (memory ~ 60 arrays of chunk x size^2).
    """

    def __init__(self, seed: int = 0, size: int = 48, jitter: float = 1.0, chunk: int = 64):
        if int(seed) < 0:
            raise ValueError("seed: must be a non-negative integer")
        if int(size) < 16:
            raise ValueError("size: must be at least 16 pixels")
        self.seed = int(seed)
        self.size = int(size)
        self.jitter = float(jitter)
        self.chunk = int(chunk)
        self._identity = lru_cache(maxsize=4096)(self._make_identity)

    # ------------------------------------------------------------------ people

    def identity(self, k: int) -> Identity:
        """Person k (cached); depends only on (seed, k)."""
        return self._identity(int(k))

    @staticmethod
    def person_name(k: int) -> str:
        return f"synth{int(k):05d}"

    def _make_identity(self, k: int) -> Identity:
        if k < 0:
            raise ValueError("k: person index must be non-negative")
        rng = np.random.default_rng([_STREAM_IDENTITY, self.seed, k])
        look = RESTING_LOOKS[int(rng.choice(len(RESTING_LOOKS), p=_RESTING_PROBS))]
        lo = np.array([g[1] for g in _GEOMETRY])
        hi = np.array([g[2] for g in _GEOMETRY])
        u = rng.random(len(_GEOMETRY))
        for trait, side in _RESTING_BUILDS[look].items():
            i = _GEOMETRY_NAMES.index(trait)
            u[i] = (u[i] + side + 1) / 3.0
        geo = lo + u * (hi - lo)
        geometry = {name: float(v) for name, v in zip(_GEOMETRY_NAMES, geo)}
        # Hair: 75 % dark, 25 % light (blond/grey); a light-haired person still has brows
        # darker than the skin (brow_tone < 1).
        dark = rng.random() < 0.75
        geometry["hair_tone"] = float(rng.uniform(0.05, 0.30) if dark else rng.uniform(0.50, 0.80))
        # The hairline must stay above the (raised) brows.
        top_of_brows = geometry["eye_y"] - geometry["brow_gap"] - 0.22
        geometry["hairline"] = min(geometry["hairline"], top_of_brows)

        smirk_side = 1 if rng.random() < 0.5 else -1
        strength = float(rng.uniform(*_RESTING_STRENGTH)) if look != "none" else 0.0
        rest = _RESTING_VECTORS[look] * strength
        if smirk_side < 0:
            rest = _flip_smirk(rest)
        rest = rest + rng.normal(0.0, _RESTING_NOISE, len(ACTIONS))
        gains = np.exp(rng.normal(0.0, _GAIN_SIGMA, len(ACTIONS))) * rng.uniform(0.85, 1.15)
        return Identity(
            index=k,
            name=self.person_name(k),
            geometry=geometry,
            resting=look,
            resting_strength=strength,
            neutral_actions=rest.astype(np.float32),
            gains=gains.astype(np.float32),
            smirk_side=smirk_side,
        )

    # ------------------------------------------------------------------ sets

    def identity_set(self, n_people: int, per_person: int, first_person: int = 0) -> ImageSet:
        """Faces of people first_person .. first_person+n_people-1 with random expressions.

        Returns an ImageSet with labels = person index within the set (0..n_people-1) and
        classes = the person names; for identity (DeepID) pre-training. Expressions follow
        a web-photo mix (mostly neutral and happy) at intensity 0.3-1.0.
        """
        people = range(int(first_person), int(first_person) + int(n_people))
        draws = []
        for k in people:
            rng = np.random.default_rng([_STREAM_ID_SET, self.seed, k, per_person])
            cls = rng.choice(len(CLASSES), size=per_person, p=_IDENTITY_CLASS_PROBS)
            draws.append(self._draw_images(k, cls, rng, intensity=(0.3, 1.0)))
        images = self._render_draws(draws)
        names = [self.person_name(k) for k in people]
        return ImageSet(
            images=images,
            labels=np.repeat(np.arange(len(names), dtype=np.int64), per_person),
            classes=names,
            subjects=np.repeat(np.array(names), per_person),
            name="synthetic-identity",
            synthetic=True,
        )

    def expression_set(
        self,
        n_people: int,
        per_person_per_class: int,
        first_person: int = 0,
        name: str = "synthetic",
    ) -> ImageSet:
        """Balanced expression data: every person shows every class per_person_per_class times.

        Returns an ImageSet with labels = index into CLASSES, ordered person-major, then
        class, then repetition. Intensity is uniform in 0.5-1.0 of the full expression.
        """
        people = range(int(first_person), int(first_person) + int(n_people))
        cls = np.repeat(np.arange(len(CLASSES)), per_person_per_class)
        draws = []
        for k in people:
            rng = np.random.default_rng([_STREAM_EXPR_SET, self.seed, k, per_person_per_class])
            draws.append(self._draw_images(k, cls, rng, intensity=_EXPRESSION_INTENSITY))
        images = self._render_draws(draws)
        names = [self.person_name(k) for k in people]
        if not name.startswith("synthetic"):
            name = "synthetic-" + name
        return ImageSet(
            images=images,
            labels=np.tile(cls, len(names)).astype(np.int64),
            classes=list(CLASSES),
            subjects=np.repeat(np.array(names), len(cls)),
            name=name,
            synthetic=True,
        )

    def default_splits(
        self,
        train_people: int = 48,
        val_people: int = 16,
        test_people: int = 40,
        per_person_per_class: int = 4,
        identity_people: int = 300,
        identity_per_person: int = 15,
        first_person: int = 0,
        identity: bool = True,
    ) -> dict:
        """Expression train/val/test and an identity set, each with its own people
        (``identity=False``: no identity set, for a run that shares another's).

        People are numbered consecutively from first_person: train, then validation, then
        test, then identity. Test people are unseen in training, validation people are
        distinct from both (model selection on validation is honest), and the identity
        set's people appear in no expression split (as CASIA-WebFace vs CK+ in the paper).
        Defaults: 1,536 / 512 / 1,280 expression images and 300 x 15 identity images.
        """
        k = int(first_person)
        splits = {}
        for split, n in (("train", train_people), ("val", val_people), ("test", test_people)):
            splits[split] = self.expression_set(n, per_person_per_class, k,
                                                name=f"synthetic-{split}")
            k += n
        if identity:
            splits["identity"] = self.identity_set(identity_people, identity_per_person, k)
        return splits

    def expression_grid(self, people, intensity: float = 1.0, classes=None) -> np.ndarray:
        """uint8 [P, C, H, W]: each person's expressions (default all 8, in CLASSES order),
        clean (no jitter, no per-image wobble), at one intensity.

        For contact sheets and tests; contempt uses the person's habitual smirk side.
        """
        people = [int(k) for k in people]
        cls = np.arange(len(CLASSES)) if classes is None else np.asarray(classes, int).reshape(-1)
        draws = []
        for k in people:
            person = self.identity(k)
            deltas = EXPRESSION_DELTAS[cls] * intensity
            if person.smirk_side < 0:
                deltas = _flip_smirk(deltas)
            actions = person.neutral_actions[None, :] + person.gains[None, :] * deltas
            actions = np.clip(actions, *_ACTION_RANGE)
            draws.append(self._params(k, actions, self._clean_jitter(len(cls))))
        images = self._render_draws(draws, noise=False)
        return images.reshape(len(people), len(cls), self.size, self.size)

    # ------------------------------------------------------------------ drawing

    def _draw_images(self, k: int, cls: np.ndarray, rng, intensity) -> dict:
        """Per-image parameters of person k showing classes cls [m] (numpy draws from rng)."""
        person = self.identity(k)
        m = len(cls)
        amount = rng.uniform(intensity[0], intensity[1], m).astype(np.float32)
        deltas = EXPRESSION_DELTAS[cls] * amount[:, None]
        # Contempt: the person's habitual side 80 % of the time.
        side = np.where(rng.random(m) < 0.8, person.smirk_side, -person.smirk_side)
        flip = (cls == _CONTEMPT) & (side < 0)
        deltas[flip] = _flip_smirk(deltas[flip])
        actions = (
            person.neutral_actions[None, :]
            + person.gains[None, :] * deltas
            + rng.normal(0.0, _MICRO_NOISE, (m, len(ACTIONS))).astype(np.float32)
        )
        actions = np.clip(actions, *_ACTION_RANGE)

        j = self.jitter
        px = 2.0 / self.size
        rot = np.deg2rad(rng.uniform(-10, 10, m)) * j
        light_angle = rng.uniform(0, 2 * np.pi, m)
        jit = {
            "rot_cos": np.cos(rot),
            "rot_sin": np.sin(rot),
            "dx": rng.uniform(-3, 3, m) * px * j,
            "dy": rng.uniform(-3, 3, m) * px * j,
            "scale": 1.0 + rng.uniform(-0.08, 0.08, m) * j,
            "yaw": rng.uniform(-0.05, 0.05, m) * j,
            "gaze": rng.uniform(-1, 1, m) * j,
            "light_cos": np.cos(light_angle),
            "light_sin": np.sin(light_angle),
            "light": rng.uniform(0.0, 0.35, m) * j,
            "bright": rng.uniform(-0.08, 0.08, m) * j,
            "gain": 1.0 + rng.uniform(-0.2, 0.2, m) * j,
            "bg": 0.45 + rng.uniform(-0.35, 0.35, m) * j,
            "bg_grad": rng.uniform(-0.2, 0.2, m) * j,
            "blur": rng.uniform(0.0, 0.22, m) * j,
            "noise": (0.004 + rng.uniform(0.0, 0.02, m)) * j,
        }
        params = self._params(k, actions, jit)
        params["_noise"] = rng.standard_normal((m, self.size, self.size), dtype=np.float32)
        return params

    @staticmethod
    def _clean_jitter(m: int) -> dict:
        ones, zeros = np.ones(m), np.zeros(m)
        return {"rot_cos": ones, "rot_sin": zeros, "dx": zeros, "dy": zeros, "scale": ones,
                "yaw": zeros, "gaze": zeros, "light_cos": ones, "light_sin": zeros,
                "light": zeros, "bright": zeros,
                "gain": ones, "bg": ones * 0.45, "bg_grad": zeros, "blur": zeros,
                "noise": zeros}

    def _params(self, k: int, actions: np.ndarray, jit: dict) -> dict:
        """Flat dict name -> float32 [m] of everything the renderer needs."""
        person = self.identity(k)
        m = actions.shape[0]
        p = {name: np.full(m, person.geometry[name], np.float32) for name in _PERSON_FIELDS}
        for i, name in enumerate(ACTIONS):
            p[name] = actions[:, i].astype(np.float32)
        for name, v in jit.items():
            p[name] = np.asarray(v, np.float32)
        return p

    def _render_draws(self, draws: list, noise: bool = True) -> np.ndarray:
        """Concatenate the per-person draws and render them chunk by chunk."""
        if not draws:
            return np.empty((0, self.size, self.size), np.uint8)
        keys = [key for key in draws[0] if key != "_noise"]
        p = {key: np.concatenate([d[key] for d in draws]) for key in keys}
        n = len(p[keys[0]])
        nz = np.concatenate([d["_noise"] for d in draws]) if noise else None
        out = np.empty((n, self.size, self.size), np.uint8)
        # Render in order of the eyes' image row so that each chunk's feature windows are
        # tight; the result does not depend on the order (see the rendering notes).
        order = np.argsort(p["dy"] + p["scale"] * p["rot_cos"] * p["eye_y"], kind="stable")
        for s in range(0, n, self.chunk):
            idx = order[s : s + self.chunk]
            chunk = {key: v[idx, None, None] for key, v in p.items()}
            out[idx] = _render(chunk, self.size, None if nz is None else nz[idx])
        return out


def default_splits(seed: int = 0, size: int = 48, **sizes) -> dict:
    """``SyntheticFaces(seed, size).default_splits(**sizes)``."""
    return SyntheticFaces(seed=seed, size=size).default_splits(**sizes)


# ---------------------------------------------------------------------- rendering
#
# All helpers take [n, h, w] coordinate arrays X, Y of the canonical face frame (x right,
# y down, the crop spans [-1, 1]) and per-image parameters shaped [n, 1, 1].
#
# Exactness: every feature has compact support (anti-aliased shapes end half a pixel
# outside their edge, soft shading uses (1 - q)^2 bumps instead of Gaussians) and is
# evaluated on a pixel window that contains that support, and per-pixel work uses only
# IEEE-exact operations (+ - * / sqrt, min/max, floor): no exp/cos whose SIMD and scalar
# paths may differ in the last bit. An image's pixels are therefore bit-identical whichever
# chunk, window or order it is rendered in, which is what makes person k reproducible
# regardless of what else is generated.


def _bump(q):
    """(1 - q)^2 for q < 1, else 0: a smooth, compactly supported stand-in for exp(-q)."""
    b = np.maximum(1.0 - q, 0.0)
    return b * b


def _blob(X, Y, cx, cy, rx, ry):
    """Soft spot, 1 at (cx, cy), exactly 0 beyond the ellipse of half-axes rx, ry."""
    dx, dy = (X - cx) / rx, (Y - cy) / ry
    return _bump(dx * dx + dy * dy)


def _ridges(t, width=0.2):
    """Periodic soft lines: 1 at integer t, 0 farther than ``width`` (in periods) from one."""
    p = (t - np.floor(t + 0.5)) / width
    return _bump(p * p)


def _seg(X, Y, ax, ay, bx, by):
    """Distance to the segment A-B and the position h in [0, 1] of the nearest point."""
    bax, bay = bx - ax, by - ay
    pax, pay = X - ax, Y - ay
    h = np.clip((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-12), 0.0, 1.0)
    ex, ey = pax - bax * h, pay - bay * h
    return np.sqrt(ex * ex + ey * ey), h


def _ellipse(X, Y, a, b):
    """Approximate signed distance to an axis-aligned ellipse with half-axes a, b."""
    xa, yb = X / a, Y / b
    k0 = np.sqrt(xa * xa + yb * yb)
    xa /= a
    yb /= b
    k1 = np.sqrt(xa * xa + yb * yb)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _oval2(X, Y, a, b):
    """(Squared normalised radius q, signed distance ~ (q - 1) / 2 * min(a, b)) of a wide
    ellipse. Accurate to a few % within the anti-aliasing band; no square root."""
    xa, yb = X / a, Y / b
    q = xa * xa + yb * yb
    return q, (q - 1.0) * (0.5 * np.minimum(a, b))


class _Canvas:
    """One chunk of images being painted, with the pixel grid mapped into the face frame.

    X, Y: float32 [n, H, W] face-frame coordinates of each pixel centre; img: float32
    [n, H, W] gray levels in [0, 1]. ``window`` gives views restricted to the pixel rows and
    columns that a face-frame box can reach in any image of the chunk, so small features
    (eyes, mouth) are evaluated on a fraction of the pixels.
    """

    def __init__(self, p: dict, size: int):
        f32 = np.float32
        t = (np.arange(size, dtype=f32) + f32(0.5)) * f32(2.0 / size) - f32(1.0)
        self.IX, self.IY = t[None, None, :], t[None, :, None]
        self.size = size
        self.cs, self.sn, self.sc = p["rot_cos"], p["rot_sin"], p["scale"]
        self.dx, self.dy = p["dx"], p["dy"]
        # Image -> face frame: undo the shift, then the rotation and scale.
        U, V = self.IX - self.dx, self.IY - self.dy
        self.X = (self.cs * U + self.sn * V) / self.sc
        self.Y = (self.cs * V - self.sn * U) / self.sc
        self.inv_px = self.sc * f32(size / 2.0)  # face units -> pixels, [n, 1, 1]
        self.img = None
        self.last = (slice(None),) * 3

    def cov(self, d):
        """Anti-aliased coverage of the region d < 0 (d in face units)."""
        return np.clip(np.float32(0.5) - d * self.inv_px, 0.0, 1.0)

    def window(self, x0, x1, y0, y1):
        """(X, Y, img) views over the pixels the face-frame box [x0, x1] x [y0, y1] reaches
        in any image of the chunk (plus a pixel of margin); bounds may be [n, 1, 1]."""
        us, vs = [], []
        for bx in (x0, x1):
            for by in (y0, y1):
                # Face frame -> image: rotate and scale, then shift.
                us.append(self.sc * (self.cs * bx - self.sn * by) + self.dx)
                vs.append(self.sc * (self.sn * bx + self.cs * by) + self.dy)
        half = self.size / 2.0

        def pixels(vals):
            lo = min(float(np.min(a)) for a in vals) * half + half - 0.5
            hi = max(float(np.max(a)) for a in vals) * half + half - 0.5
            start = max(0, int(np.floor(lo)) - 1)
            return slice(start, max(start, min(self.size, int(np.ceil(hi)) + 2)))

        self.last = (slice(None), pixels(vs), pixels(us))
        return self.X[self.last], self.Y[self.last], self.img[self.last]


def _paint(img, tone, alpha):
    """In place: img <- img + (tone - img) * alpha."""
    img += (tone - img) * alpha


def _render(p: dict, size: int, noise) -> np.ndarray:
    """Render one chunk: p maps names to float32 [n, 1, 1]; returns uint8 [n, size, size]."""
    f32 = np.float32
    cv = _Canvas(p, size)
    X, Y, cov = cv.X, cv.Y, cv.cov
    g = p  # geometry and actions share the dict
    skin, ct, yaw, hair = g["skin"], g["contrast"], g["yaw"], g["hair_tone"]

    # --- background, hair behind the head, neck, ears (whole image) -----------------------
    bg = g["bg"] + g["bg_grad"] * (cv.IX + 0.5 * cv.IY)
    cv.img = img = np.broadcast_to(bg, X.shape).astype(f32)
    fcy = g["face_cy"] + 0.03 * g["jaw_drop"]
    fh = g["face_h"] + 0.06 * g["jaw_drop"]
    fw = g["face_w"]
    _, d_head = _oval2(X, Y - (fcy - 0.08), fw + 0.10, fh + 0.06)
    hair_bottom = g["eye_y"] + 0.05 + 0.95 * g["hair_len"]
    _paint(img, hair, cov(np.maximum(d_head, Y - hair_bottom)))
    _paint(img, skin * 0.72, cov(np.maximum(np.abs(X) - 0.42 * fw, fcy - Y)))
    ear_y = g["eye_y"] + 0.14
    for sx in (-1.0, 1.0):
        ex = sx * fw * 0.97
        Xl, Yl, im = cv.window(ex - 0.1, ex + 0.1, ear_y - 0.17, ear_y + 0.17)
        _paint(im, skin * 0.85, cov(_ellipse(Xl - ex, Yl - ear_y, 0.085, 0.15)))

    # --- face oval with a narrowing jaw, darker towards its rim ---------------------------
    yy = np.clip((Y - fcy) / fh, 0.0, 1.0)
    Xw = X / (1.0 - g["jaw"] * yy * yy)
    kf2, d_face = _oval2(Xw, Y - fcy, fw, fh)
    c_face = cov(d_face)
    np.minimum(kf2, 1.0, out=kf2)
    _paint(img, skin * (1.0 - 0.28 * kf2 * kf2), c_face)

    # Feature anchors (yaw moves the nose most, the face rim least).
    ey, ew = g["eye_y"], g["eye_w"]
    by = ey - g["brow_gap"]
    nx, ny, mx = yaw, ey + g["nose_len"], 0.55 * yaw
    inner, outer = g["inner_brow_raise"], g["outer_brow_raise"]
    lower, knit = g["brow_lower"], g["brow_knit"]

    # --- forehead: horizontal wrinkles from brow raising ---------------------------------
    Xl, Yl, im = cv.window(-0.45, 0.45, by - 0.32, by)
    raise_amt = np.clip(0.5 * (inner + outer), 0.0, 1.5)
    half = 0.16 + 0.22 * np.clip(outer, 0.0, 1.0)
    y0 = by - 0.10
    band = np.clip((Yl - (by - 0.30)) * 12.0, 0.0, 1.0) * np.clip((y0 + 0.03 - Yl) * 12.0, 0, 1)
    band *= np.clip((half - np.abs(Xl - 0.3 * yaw)) * 10.0, 0.0, 1.0)
    wave = _ridges((Yl - y0 - 0.12 * Xl * Xl) * f32(1 / 0.075))
    im *= 1.0 - 0.30 * ct * raise_amt * band * wave

    # --- eye sockets, brows, frown lines --------------------------------------------------
    socket = ct * (0.08 + 0.10 * np.clip(lower, 0, 1.5))
    for sx in (-1.0, 1.0):
        ex = sx * g["eye_dx"] + 0.35 * yaw
        Xl, Yl, im = cv.window(ex - 3.2 * ew, ex + 3.2 * ew, ey - 0.23, ey + 0.17)
        im *= 1.0 - socket * _blob(Xl, Yl, ex, ey - 0.03, 3.2 * ew, 0.20)

    bl, bt = g["brow_len"] * ew, g["brow_thick"]
    brow_tone = skin * g["brow_tone"]
    for sx in (-1.0, 1.0):
        ex = sx * g["eye_dx"] + 0.3 * yaw
        x_in = ex - sx * (1.0 * bl + 0.05 * knit)
        x_mid = ex + sx * 0.2 * ew
        x_out = ex + sx * 1.15 * bl
        y_in = by + 0.01 - 0.12 * inner - 0.02 * outer + 0.075 * lower + 0.02 * knit
        y_mid = by - g["brow_arch"] - 0.035 * inner - 0.075 * outer + 0.05 * lower
        y_out = by + 0.025 - 0.01 * inner - 0.09 * outer + 0.03 * lower
        xa = np.minimum(np.minimum(x_in, x_out), x_mid)
        xb = np.maximum(np.maximum(x_in, x_out), x_mid)
        ya = np.minimum(np.minimum(y_in, y_mid), y_out)
        yb = np.maximum(np.maximum(y_in, y_mid), y_out)
        Xl, Yl, im = cv.window(xa - bt, xb + bt, ya - bt, yb + bt)
        d1, h1 = _seg(Xl, Yl, x_in, y_in, x_mid, y_mid)
        d2, h2 = _seg(Xl, Yl, x_mid, y_mid, x_out, y_out)
        d = np.minimum(d1 - bt * (1.0 - 0.15 * h1), d2 - bt * (0.85 - 0.35 * h2))
        _paint(im, brow_tone, 0.9 * cov(d))

    # Vertical frown lines between the brows (AU4).
    Xl, Yl, im = cv.window(-0.1 + 0.3 * yaw, 0.1 + 0.3 * yaw, by - 0.05, by + 0.1)
    frown = np.clip(0.5 * lower + 0.6 * knit, 0.0, 1.5)
    lines_x = (np.abs(np.abs(Xl - 0.3 * yaw) - 0.04)) * f32(1 / 0.032)
    lines_y = np.clip((Yl - (by - 0.02)) * 15.0, 0, 1) * np.clip((by + 0.09 - Yl) * 15.0, 0, 1)
    im *= 1.0 - 0.35 * ct * frown * lines_y * _bump(lines_x * lines_x)

    # --- eyes ---------------------------------------------------------------------------
    ulr, tight, cheek = g["upper_lid_raise"], g["lid_tighten"], g["cheek_raise"]
    eo = g["eye_open"]
    hu = np.maximum(eo * (1.0 + 0.9 * ulr - 0.45 * tight - 0.3 * cheek), 0.006)
    hl = np.maximum(0.65 * eo * (1.0 - 0.6 * tight - 0.75 * cheek + 0.2 * ulr), 0.004)
    sclera = np.minimum(0.45 + 0.6 * skin, 0.95)
    tilt = np.abs(g["eye_tilt"]) * 1.1
    for sx in (-1.0, 1.0):
        ex = sx * g["eye_dx"] + 0.35 * yaw
        Xl, Yl, im = cv.window(ex - 1.15 * ew, ex + 1.15 * ew,
                               ey - tilt - hu - 0.03, ey + tilt + hl + 0.02)
        u = (Xl - ex) / ew
        f = np.clip(1.0 - u * u, 0.0, 1.0)
        yc = ey - sx * g["eye_tilt"] * u
        top = yc - hu * f
        bot = yc + hl * f
        au = np.abs(u)
        c_open = cov(np.maximum(np.maximum(top - Yl, Yl - bot), (au - 1.0) * ew))
        _paint(im, sclera, c_open)
        ix, iy = Xl - (ex + 0.25 * ew * g["gaze"]), Yl - ey
        d_iris = np.sqrt(ix * ix + iy * iy) - g["iris_r"]
        _paint(im, g["iris_tone"], cov(d_iris) * c_open)
        # Upper lid margin and lashes: the darkest, most visible line of the eye.
        d_lid = np.maximum(np.abs(Yl - (top - 0.006)) - 0.017, (au - 1.1) * ew)
        _paint(im, skin * 0.22, 0.85 * cov(d_lid))
        d_low = np.maximum(np.abs(Yl - (bot + 0.008)) - 0.008, (au - 0.95) * ew)
        _paint(im, skin * 0.55, 0.4 * cov(d_low))
        # Raised cheeks bunch up under the eyes (AU6).
        cx = ex + sx * 0.03
        Xl, Yl, im = cv.window(cx - 0.26, cx + 0.26, ey + 0.05, ey + 0.29)
        im *= 1.0 + 0.10 * cheek * _blob(Xl, Yl, cx, ey + 0.17, 0.26, 0.12)

    # --- nose ---------------------------------------------------------------------------
    wrinkle, ulip = g["nose_wrinkle"], g["upper_lip_raise"]
    nw = g["nose_w"] * (1.0 + 0.15 * np.clip(wrinkle, 0, 1.5) + 0.1 * ulip)
    nyy = ny - 0.03 * wrinkle - 0.02 * ulip
    nxw = np.maximum(1.8 * nw, 0.2)
    Xl, Yl, im = cv.window(nx - nxw, nx + nxw, ey - 0.02, nyy + 0.09)
    side = np.where(g["light_cos"] * g["light"] >= 0, -1.0, 1.0).astype(f32)
    d_side, _ = _seg(Xl, Yl, nx + side * 0.07, ey + 0.12, nx + side * nw * 0.8, nyy - 0.05)
    d_side *= f32(1 / 0.09)
    im *= 1.0 - 0.09 * ct * _bump(d_side * d_side)
    im *= 1.0 - 0.22 * ct * _blob(Xl, Yl, nx, nyy + 0.03, 1.8 * nw, 0.056)
    im *= 1.0 + 0.07 * _blob(Xl, Yl, nx, nyy - 0.05, 1.2 * nw, 0.07)
    for sx in (-1.0, 1.0):
        d_nostril = _ellipse(Xl - (nx + sx * 0.55 * nw), Yl - nyy, 0.038, 0.021)
        _paint(im, skin * 0.3, 0.85 * cov(d_nostril))
    # AU9: horizontal creases across the bridge of the nose.
    bridge = np.clip((0.10 - np.abs(Xl - nx)) * 20.0, 0, 1)
    bridge *= np.clip((Yl - ey) * 20, 0, 1) * np.clip((ey + 0.16 - Yl) * 20, 0, 1)
    creases = _ridges((Yl - ey) * f32(1 / 0.05))
    im *= 1.0 - 0.30 * ct * np.clip(wrinkle, 0, 1.5) * bridge * creases

    # --- mouth ---------------------------------------------------------------------------
    pull, dep = g["lip_corner_pull"], g["lip_corner_depress"]
    stretch, press = g["lip_stretch"], g["lip_press"]
    chin, part, jaw = g["chin_raise"], g["lips_part"], g["jaw_drop"]
    my = ny + g["mouth_dy"] + 0.02 * jaw - 0.015 * chin
    mw = g["mouth_w"] * (1.0 + 0.2 * pull + 0.3 * stretch - 0.15 * press - 0.15 * jaw)
    corners = {}
    for sx, smirk in ((-1.0, g["smirk_left"]), (1.0, g["smirk_right"])):
        w = mw * (1.0 + 0.2 * smirk)
        up = 0.09 * pull + 0.10 * smirk - 0.075 * dep - 0.015 * stretch - 0.015 * chin
        corners[sx] = (w, up, smirk)
    opening = 0.07 * np.maximum(part, 0) + 0.14 * np.maximum(jaw, 0) + 0.02 * np.maximum(stretch, 0)
    ou = 0.3 * opening + 0.045 * np.maximum(ulip, 0)
    ol = 0.7 * opening
    thin = (1.0 - 0.6 * np.clip(press, 0, 1.2)) * (1.0 - 0.3 * np.clip(stretch, 0, 1.2))
    thin = thin * (1.0 - 0.25 * np.clip(pull, 0, 1.2))
    tu = g["lip_up"] * thin
    tl = g["lip_lo"] * thin * (1.0 + 0.2 * np.clip(chin, 0, 1.5))
    half_px = 0.3 / cv.inv_px  # closed lips still show a dark line about a pixel wide

    # The window holds the folds (from the nose wings), both lips, the under-lip shadow and
    # the chin dimple, whatever the actions.
    wl, wr = corners[-1.0][0], corners[1.0][0]
    up_hi = np.maximum(np.maximum(corners[-1.0][1], corners[1.0][1]), 0.0)
    up_lo = np.minimum(np.minimum(corners[-1.0][1], corners[1.0][1]), 0.0)
    wmax = np.maximum(wl, wr)
    x_half = np.maximum(np.maximum(wmax * 1.25 + 0.02, wmax + 0.12), 0.8 * nw + 0.09)
    y_top = np.minimum(nyy - 0.08, my - up_hi - ou - tu - half_px - 0.01)
    y_bot = np.maximum(my - up_lo + ol + tl + half_px + 0.09, my + 0.26)
    Xl, Yl, im = cv.window(mx - x_half - 0.02, mx + x_half + 0.02, y_top, y_bot)

    # Nasolabial folds deepen with smiling, smirking, sneering and stretching.
    for sx in (-1.0, 1.0):
        w, up, smirk = corners[sx]
        depth = 0.06 + 0.3 * pull + 0.25 * smirk + 0.3 * wrinkle + 0.25 * ulip + 0.1 * stretch
        depth = np.clip(depth, 0.0, 0.9)
        d_fold, _ = _seg(Xl, Yl, nx + sx * (0.8 * nw + 0.04), nyy - 0.03,
                         mx + sx * (w + 0.07), my - 0.6 * up + 0.07)
        d_fold *= f32(1 / 0.044)
        im *= 1.0 - 0.4 * ct * depth * _bump(d_fold * d_fold)
        im *= 1.0 - 0.45 * smirk * _blob(Xl, Yl, mx + sx * (w + 0.025), my - up, 0.044, 0.06)

    left = Xl < mx
    mw_s = np.where(left, wl, wr)
    up_s = np.where(left, corners[-1.0][1], corners[1.0][1])
    u = (Xl - mx) / mw_s
    u2 = np.minimum(u * u, 1.0)
    sq = np.sqrt(1.0 - u2)
    yc = my - up_s * u2
    open_top = yc - ou * sq - half_px
    open_bot = yc + ol * sq + half_px
    lip_top = open_top - tu * (0.3 + 0.7 * sq)
    lip_bot = open_bot + tl * (0.3 + 0.7 * sq)
    d_h = (np.abs(u) - 1.0) * mw_s

    # Shadow under the lower lip, chin dimple from AU17.
    sy = (Yl - lip_bot - 0.035) * f32(1 / 0.05)
    im *= 1.0 - 0.15 * ct * _bump(sy * sy) * _bump(0.64 * u * u)
    im *= 1.0 - 0.18 * ct * np.clip(chin, 0, 1.5) * _blob(Xl, Yl, mx, my + 0.17, 0.18, 0.08)

    _paint(im, skin * g["lip_tone"], cov(np.maximum(np.maximum(lip_top - Yl, Yl - lip_bot), d_h)))
    c_open = cov(np.maximum(np.maximum(open_top - Yl, Yl - open_bot), d_h))
    _paint(im, skin * 0.15, c_open)
    teeth_frac = np.clip(0.25 + 0.5 * pull + 0.45 * stretch + 0.5 * ulip - 0.25 * jaw, 0.1, 0.85)
    teeth_bot = open_top + teeth_frac * (open_bot - open_top)
    d_teeth = np.maximum(np.maximum(open_top + 0.3 * half_px - Yl, Yl - teeth_bot), d_h + 0.015)
    c_teeth = cov(d_teeth)
    _paint(im, np.minimum(0.5 + 0.5 * skin, 0.92), c_teeth * c_open)

    # --- hair over the forehead (drawn last: it covers wrinkles) ---------------------------
    # 2 x coverage: where the fringe meets the face rim there is hair on both sides, and a
    # plain product of two half-coverages would leave a skin-coloured seam.
    Xl, Yl, im = cv.window(-1.0, 1.0, -1.2, g["hairline"] + g["hair_curve"] + 0.02)
    hair_y = g["hairline"] + g["hair_curve"] * Xl * Xl
    _paint(im, hair, cov(Yl - hair_y) * np.minimum(2.0 * c_face[cv.last], 1.0))

    # --- photometric nuisance: lighting gradient, gain, brightness, blur, noise ------------
    shade = g["light"] * (g["light_cos"] * cv.IX + g["light_sin"] * cv.IY)
    shade += 1.0
    shade *= g["gain"]
    img *= shade
    img += 0.5 * (1.0 - g["gain"]) + g["bright"]
    # Slight blur: a per-image 3-tap [w, 1-2w, w] kernel along x then y (edges replicated).
    w = g["blur"]
    out = img * (1.0 - 2.0 * w)
    out[:, :, 1:] += w * img[:, :, :-1]
    out[:, :, :-1] += w * img[:, :, 1:]
    out[:, :, :1] += w * img[:, :, :1]
    out[:, :, -1:] += w * img[:, :, -1:]
    img = out * (1.0 - 2.0 * w)
    img[:, 1:, :] += w * out[:, :-1, :]
    img[:, :-1, :] += w * out[:, 1:, :]
    img[:, :1, :] += w * out[:, :1, :]
    img[:, -1:, :] += w * out[:, -1:, :]
    if noise is not None:
        img += g["noise"] * noise
    img *= 255.0
    np.rint(img, out=img)
    return np.clip(img, 0, 255).astype(np.uint8)

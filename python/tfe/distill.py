"""DeepID that carries a face teacher's knowledge: distillation of a frozen descriptor.

The paper's DeepID learned identity from 10,575 people (CASIA-WebFace). Here a teacher
that learned from millions of faces (tfe.teacher: dlib's 128-d descriptor, computed
beforehand by ``tfe-embed`` into a cache) is distilled into the unchanged DeepID: a linear
projection of its 160-d feature regresses the teacher's descriptor of the same image
(cosine loss), on every face the stage may see, while the identity classifier is trained
on the images that have person labels:

    loss = (1/N) sum CE(classifier(dropout(f)), person)   over the images with a person label
         + weight * mean(1 - cos(P f, teacher))          over the images with a descriptor

with f = DeepID.features(x). The projection P exists for the loss only; TFE uses f.
Descriptors are of the unaugmented image, so the augmentation also teaches DeepID that a
flipped, shifted or rotated face is the same face.
"""

from __future__ import annotations

import numpy as np

from . import nn, ops
from .data import ImageSet
from .errors import InputError
from .teacher_features import teacher_descriptors

# Share of the distillation images that must have a descriptor in the cache: fewer means
# the cache was filled for other data, or tfe-embed has not finished.
MIN_FOUND = 0.9


class DistilledDeepID(nn.Module):
    """DeepID plus the projection of its feature onto the teacher's descriptor space.
    ``forward`` is DeepID's (identity logits), which is what validation scores."""

    def __init__(self, deepid, teacher_dim):
        super().__init__()
        self.arch = deepid.arch
        self.deepid = deepid
        self.projection = nn.Linear(deepid.feature_dim, teacher_dim)

    def forward(self, x):
        return self.deepid(x)


class DistillationObjective:
    """The loss above for a batch whose target rows are [person one-hot (P) | descriptor];
    a row of zeros in either part means "no label" / "no descriptor"."""

    graphable = False  # two target arrays: the step runs eagerly

    def __init__(self, num_identities, weight):
        self.num_identities, self.weight = int(num_identities), float(weight)

    def targets(self, y):
        # Soft cross-entropy sums over the labelled rows and divides by the batch size (an
        # unlabelled row is zero: no loss, no gradient), so every image weighs 1/N. Taking
        # the mean over the few labelled rows instead (about 1 in 12 with FER+) multiplies
        # their gradients by up to 14 and makes training diverge at lr 0.05.
        return [np.ascontiguousarray(y[:, :self.num_identities], np.float32),
                np.ascontiguousarray(y[:, self.num_identities:], np.float32)]

    def loss(self, model, x, targets):
        feature = model.deepid.features(x)
        logits = model.deepid.classifier(model.deepid.dropout(feature))
        identity = ops.cross_entropy(logits, targets[0])
        teacher = ops.cosine_loss(model.projection(feature), targets[1], weight=self.weight)
        return ops.add(identity, teacher), logits

    def labels(self, y):
        people = y[:, :self.num_identities]
        return np.where(people.sum(1) > 0, people.argmax(1), -1)


def distillation_set(identity_train: ImageSet, extra: list, cache_dir, log=print):
    """The stage's training images and target rows: the identity set's training images
    (person label and descriptor) followed by the ``extra`` sets' images (descriptor only).
    Returns (ImageSet, float32 targets [N, P + D], summary dict)."""
    sets = [identity_train, *extra]
    parts, found_all = [], []
    for s in sets:
        vectors, found = teacher_descriptors(s, cache_dir, s.name)
        parts.append(vectors)
        found_all.append(found)
    vectors, found = np.concatenate(parts), np.concatenate(found_all)
    share = float(found.mean()) if len(found) else 0.0
    if share < MIN_FOUND:
        raise InputError(f"{cache_dir}: holds descriptors of only {int(found.sum())} of "
                         f"{len(found)} distillation images; fill it first: tfe-embed "
                         f"<image folders> --cache {cache_dir}")
    if not found.all():
        log(f"identity: {int((~found).sum())} of {len(found)} images have no teacher "
            "descriptor (tfe-embed could not describe them): trained without one")
    people = np.zeros((len(found), identity_train.num_classes), np.float32)
    people[np.arange(len(identity_train)), identity_train.labels] = 1.0
    images = np.concatenate([s.images for s in sets])
    subjects = np.concatenate([s.subjects for s in sets])
    labels = np.zeros(len(images), np.int64)  # placeholder: the targets carry the labels
    merged = ImageSet(images, labels, identity_train.classes, subjects,
                      name="distillation:" + "+".join(s.name for s in sets))
    summary = {"images": int(len(images)), "with_descriptor": int(found.sum()),
               "with_person_label": int(len(identity_train)),
               "sets": {s.name: len(s) for s in sets}}
    return merged, np.concatenate([people, vectors], axis=1), summary

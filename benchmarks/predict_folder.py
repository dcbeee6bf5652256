"""tfe-predict on a folder of face crops against the model's raw batch speed.

    python benchmarks/predict_folder.py [--images 2000] [--threads 2] [--rounds 3]

Writes N synthetic 48×48 face PNGs (SYNTHETIC faces, no data set needed), then measures,
alternately and ``--rounds`` times: (a) the packaged model's ``probabilities`` on uint8
batches of 128 already in memory (the engine alone), and (b) ``tfe-predict FOLDER --out
rows.csv`` in this process (listing, decoding, the crop path, batching, CSV and ledger).
Prints both in images/s (medians) and their ratio; the goal is (b) ≥ 0.8 × (a).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    import tfe
    from PIL import Image

    from tfe.cli import predict_main
    from tfe.data.synthetic import SyntheticFaces

    tfe.set_num_threads(args.threads)
    gen = SyntheticFaces(seed=0, size=48)
    people = (args.images + 7) // 8
    faces = gen.expression_grid(range(people)).reshape(-1, 48, 48)[:args.images]
    model = tfe.load_model()
    raw, tool = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "faces")
        os.makedirs(folder)
        for i, face in enumerate(faces):
            Image.fromarray(face).save(os.path.join(folder, f"{i:06d}.png"))
        for r in range(args.rounds):
            t = time.perf_counter()
            for i in range(0, len(faces), 128):
                model.probabilities(faces[i:i + 128])
            raw.append(len(faces) / (time.perf_counter() - t))
            out = os.path.join(tmp, f"rows{r}.csv")
            t = time.perf_counter()
            assert predict_main([folder, "--out", out, "--no-progress"]) == 0
            tool.append(len(faces) / (time.perf_counter() - t))
    a, b = statistics.median(raw), statistics.median(tool)
    print(f"{args.images} SYNTHETIC 48x48 face PNGs, {args.threads} threads, medians of "
          f"{args.rounds} rounds")
    print(f"engine alone, batches of 128 in memory: {a:8.0f} images/s")
    print(f"tfe-predict FOLDER --out rows.csv:      {b:8.0f} images/s  ({b / a:.2f} of the engine)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""One loaded model serving several threads at once (the C API's promise, tfe.h): 8 threads
call tfe_predict on the same tfe_model 1,000 times each, on images of several sizes and
pixel formats in a different order per thread, while the library's own threads split each
image; every result must equal the serial one bit for bit. ctypes releases the GIL for the
duration of each call, so the calls really overlap."""

import threading

import numpy as np
import pytest

from model_seeds import write_tiny_seeds

THREADS, CALLS = 8, 1000

pytestmark = pytest.mark.slow


def _images(rng):
    shapes = [(32, 32, 1), (45, 29, 1), (20, 64, 3), (7, 7, 3), (100, 90, 1), (33, 40, 3)]
    out = []
    for i in range(24):
        h, w, c = shapes[i % len(shapes)]
        pixels = np.ascontiguousarray(rng.integers(0, 256, (h, w, c), dtype=np.uint8))
        out.append((pixels, w, h, w * c, 0 if c == 1 else 1))  # GRAY8 or RGB8
    return out


def test_one_model_many_threads_bit_identical(c_api, tmp_path, library_threads=2):
    path = write_tiny_seeds(tmp_path)["tfe"]
    lib = c_api.lib
    status, message, model = c_api.load(path)
    assert status == 0, message
    assert lib.tfe_set_num_threads(library_threads) == 0
    try:
        k = lib.tfe_model_num_classes(model)
        images = _images(np.random.default_rng(3))

        def predict(img):
            pixels, w, h, stride, fmt = img
            probs = np.zeros(k, np.float32)
            s = lib.tfe_predict(model, pixels.ctypes.data, w, h, stride, fmt, probs.ctypes.data)
            return s, probs

        serial = []
        for img in images:
            s, probs = predict(img)
            assert s == 0, lib.tfe_last_error()
            serial.append(probs)

        failures = []

        def worker(t):
            order = np.random.default_rng(100 + t).integers(0, len(images), CALLS)
            for i in order:
                s, probs = predict(images[i])
                if s != 0 or not np.array_equal(probs, serial[i]):
                    failures.append((t, int(i), s, probs, serial[i]))
                    return

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not failures, failures[:3]
    finally:
        c_api.free(model)
        lib.tfe_set_num_threads(2)

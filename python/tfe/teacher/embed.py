"""``tfe-embed DIR... --cache CACHE``: teacher descriptors of every face image under the
folders, into a content-keyed cache (``cache.py``).

Images already in the cache are not computed again, so rerunning the same command
continues an interrupted run. One process per worker, each with its own dlib models and
any OpenMP/BLAS thread pool held to one thread, so that the workers, not threads, share the
cores. Unreadable images are named, skipped and counted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time

PROG = "tfe-embed"
_FLUSH_EVERY = 256  # descriptors per shard (and at most a minute's work lost on a crash)
_FLUSH_SECONDS = 60.0
_MODELS_FAILED = "cannot load the teacher models"
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _parser():
    p = argparse.ArgumentParser(
        prog=PROG, description="Compute the identity teacher's 128-d face descriptor of every "
        "image under the given folders (recursively) into a cache keyed by file content; "
        "rerun to continue an interrupted run. Needs the 'teacher' extra.")
    p.add_argument("inputs", nargs="+", metavar="DIR", help="folders of face images (or "
                   "image files)")
    p.add_argument("--cache", required=True, metavar="CACHE",
                   help="cache folder (created when new; must be empty or a teacher cache)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# ---- worker side ---------------------------------------------------------------------------
_teacher = None
_worker_error = None


def _init_worker(own_process=True):
    global _teacher, _worker_error
    if own_process:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's (_results)
        for v in _THREAD_VARIABLES:  # before dlib is imported in this process
            os.environ[v] = "1"
    try:
        from .descriptor import Teacher

        _teacher = Teacher(verify_models=False)  # the parent has checked the files
    except Exception as e:  # reported by the parent as one line, instead of a worker loop
        _worker_error = f"{_MODELS_FAILED} ({type(e).__name__}: {e})"


def _embed_one(path):
    """(path, key, descriptor or None, error message or None) for one file."""
    from ..data.images import BadImage, read_image

    if _worker_error:
        return path, None, None, _worker_error
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return path, None, None, f"{path}: cannot read ({e.strerror})"
    key = hashlib.sha256(data).hexdigest()
    try:
        return path, key, _teacher.describe(read_image(path, data=data)), None
    except BadImage as e:
        return path, key, None, str(e)
    except Exception as e:  # e.g. Pillow's decompression-bomb guard: one image, not the run
        return path, key, None, f"{path}: cannot embed ({type(e).__name__}: {e})"


# ---- parent side ---------------------------------------------------------------------------
def _fail(message):
    raise SystemExit(f"{PROG}: error: {message}")


def _plan(paths, cache, log):
    """One path per distinct content not in the cache yet; unreadable files are bad."""
    todo, seen, bad = [], set(), []
    for path in paths:
        try:
            with open(path, "rb") as f:
                key = hashlib.sha256(f.read()).hexdigest()
        except OSError as e:
            bad.append(f"{path}: cannot read ({e.strerror})")
            continue
        if key in seen:
            continue
        seen.add(key)
        if key not in cache:
            todo.append(path)
    cached = len(seen) - len(todo)
    log(f"{PROG}: {len(paths)} image files ({len(seen)} distinct), {cached} in the cache "
        f"already, {len(todo)} to embed")
    return todo, bad


def _results(todo, workers):
    if workers == 1:
        _init_worker(own_process=False)
        yield from map(_embed_one, todo)
        return
    import multiprocessing

    # spawn: each worker starts clean and imports dlib itself (no forked locks or threads).
    # Workers ignore Ctrl-C from the start (the disposition is inherited): the parent alone
    # handles it, saves what it has and stops them; a worker killed by it would leave the
    # pool waiting for its results forever.
    ctx = multiprocessing.get_context("spawn")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = ctx.Pool(workers, initializer=_init_worker)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield from pool.imap_unordered(_embed_one, todo, chunksize=4)
    finally:
        pool.terminate()
        pool.join()


def run(inputs, cache_dir, workers, progress=True, log=print):
    """The command's work; returns (embedded, skipped messages). Raises SystemExit with a
    one-line message for bad arguments, a missing extra or an unusable cache."""
    from tqdm import tqdm

    from .cache import CacheError, DescriptorCache
    from .files import image_files
    from .models import TeacherUnavailable, model_paths

    if workers < 1:
        _fail("--workers must be >= 1")
    try:
        paths = image_files(inputs)
        if not paths:
            _fail(f"no image files under {', '.join(map(str, inputs))}")
        model_paths(verify=True)
        cache = DescriptorCache(cache_dir, create=True)
    except (TeacherUnavailable, CacheError, FileNotFoundError) as e:
        _fail(str(e))
    todo, bad = _plan(paths, cache, log)
    workers = max(1, min(workers, len(todo)))
    embedded, started, last_flush = 0, time.time(), time.time()
    bar = tqdm(total=len(todo), unit="img", disable=not progress or not todo,
               mininterval=1.0 if sys.stderr.isatty() else 60.0, dynamic_ncols=True)
    results = _results(todo, workers)
    try:
        for path, key, vector, error in results:
            bar.update(1)
            if error is not None:
                if error.startswith(_MODELS_FAILED):
                    _fail(error)
                bad.append(error)
                (log if bar.disable else bar.write)(f"{PROG}: skipped {error}")
                continue
            cache.add(key, vector)
            embedded += 1
            if cache.unflushed >= _FLUSH_EVERY or time.time() - last_flush > _FLUSH_SECONDS:
                cache.flush()
                last_flush = time.time()
    except KeyboardInterrupt:
        results.close()
        bar.close()
        cache.flush()
        log(f"{PROG}: interrupted after {embedded} new descriptors (saved; the cache holds "
            f"{len(cache)}); run the same command again to continue")
        raise SystemExit(130)
    finally:
        results.close()  # stops the worker processes, however the loop ended
        bar.close()
        cache.flush()
    cache.compact()
    elapsed = time.time() - started
    rate = f", {embedded / elapsed:.1f} img/s with {workers} worker(s)" if embedded else ""
    log(f"{PROG}: embedded {embedded} image(s) in {elapsed:.0f} s{rate}; the cache holds "
        f"{len(cache)} descriptors ({cache.folder})")
    if bad:
        log(f"{PROG}: skipped {len(bad)} bad image(s), first: {bad[0]}")
    return embedded, bad


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = _parser().parse_args(argv)
    # `kill` (SIGTERM) stops a background run as Ctrl-C does: what is computed is saved.
    signal.signal(signal.SIGTERM, _stop)
    run(args.inputs, args.cache, args.workers, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())

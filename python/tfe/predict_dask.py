"""tfe-predict over a Dask cluster (``dask.distributed``, the ``dask`` extra): the inputs
are cut into chunks, each chunk is one task (predict_files.predict_chunk: the worker loads
the model once and keeps it), and the results come back in input order as soon as every
earlier chunk is done, so that tfe-predict writes them (and its resume ledger) as it goes.

``--workers N`` starts a local cluster of N single-threaded worker processes (each runs
the engine with one thread); ``--scheduler ADDRESS`` uses an existing cluster, whose
workers must have tfe installed and see the input files and the model file at the same
paths.
"""

from __future__ import annotations

import logging

from .errors import InputError

CHUNK = 16  # files per task: enough to batch faces, small enough to spread and resume


def predict_on_cluster(paths, model_path, detect, every, scheduler=None, workers=None,
                       fail_fast=False, chunk=CHUNK):
    """FileResults of ``paths`` in input order, computed on the cluster."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("--workers / --scheduler need Dask: pip install "
                         "\"dask[distributed]\" (or tfe's extra: pip install \".[dask]\")") from None
    from .predict_files import predict_chunk

    if not paths:
        return
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise InputError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR,
                                   env={"OMP_NUM_THREADS": "1"})
            client = Client(cluster)
        with client:
            chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
            futures = [client.submit(predict_chunk, model_path, detect, every, c,
                                     key=f"tfe-predict-{i}-{c[0]}", pure=False)
                       for i, c in enumerate(chunks)]
            order = {f.key: i for i, f in enumerate(futures)}
            ready, next_chunk = {}, 0
            for future in as_completed(futures):
                ready[order[future.key]] = future.result()  # a task's error is raised here
                while next_chunk in ready:
                    for r in ready.pop(next_chunk):
                        if fail_fast and r.error:
                            raise InputError(r.error)
                        yield r
                    next_chunk += 1
    finally:
        if cluster is not None:
            cluster.close()

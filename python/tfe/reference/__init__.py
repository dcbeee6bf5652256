"""NumPy/CuPy reference implementation of every tfe op: the executable specification.

Each function has the same name, arguments and return structure as its native counterpart
in tfe._native. Functions work in the dtype of their inputs (float32 in, float32 out) and
on NumPy or CuPy arrays (see get_array_module). Inputs are never modified, except the
running statistics of the training-mode batch-norm forwards and sgd_step's params and
momentum buffers, which are specified as in place.

One module per op family (<op>.py: <op>_forward, <op>_backward, ...); its public functions
are the ops, and all of them are exported here, so a new op needs no list to be edited
(xp.py's get_array_module is the one helper). tests/test_devices.py checks that every
native op (tfe._native.ops()) has its reference.
"""
import importlib
import inspect
import pkgutil


def _export_ops():
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                globals()[name] = fn
                names.append(name)
    return names


__all__ = _export_ops()

"""PyTorch as an outside oracle of the reference (tfe.reference): the helpers of the sections
"reference against PyTorch" of tests/test_<op>.py (forwards, every gradient through
torch.autograd, batch-norm running statistics, SGD steps). Those tests take the ``torch``
fixture (conftest.py): without PyTorch they skip with REASON.

float64 is compared tightly (the formulas are the same up to summation order); a float32
pass checks that the reference also works in the dtype the engine uses.
"""
import numpy as np

REASON = "PyTorch is an optional test-only oracle: pip install torch==2.13.0"
TOL = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}
DTYPES = [np.float64, np.float32]


def T(a, grad=False):
    """A torch tensor holding a copy of a (a leaf that requires grad if grad)."""
    import torch

    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(True) if grad else t


def close(mine, theirs, dtype, name=""):
    """The reference's result against torch's (a tensor or an array) under TOL[dtype]."""
    import torch

    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    assert np.shape(mine) == np.shape(theirs), name
    np.testing.assert_allclose(mine, theirs, err_msg=name, **TOL[dtype])

"""Fused epilogue of a residual block: y = relu(batchnorm(x) + shortcut), or relu(batchnorm(x))
when shortcut is None (batch norm and ReLU fused).

x and shortcut have the same shape [N, C, H, W] (or [N, C]); batch-norm semantics as in
batchnorm.py (training: batch statistics, running stats updated in place; eval: running
statistics). The backward uses the output y for the ReLU mask:
    dz = dy * (y > 0);  dshortcut = dz;  (dx, dgamma, dbeta) = batchnorm_backward(dz, ...)
"""
from .batchnorm import batchnorm_backward, batchnorm_forward_eval, batchnorm_forward_train
from .relu import relu_backward, relu_forward


def _check(x, shortcut):
    if shortcut is not None and x.shape != shortcut.shape:
        raise ValueError(f"[residual] x {x.shape} and shortcut {shortcut.shape} differ")


def _add(z, shortcut):
    return z if shortcut is None else z + shortcut


def residual_forward_train(x, shortcut, gamma, beta, running_mean, running_var, eps=1e-5,
                           momentum=0.1):
    """-> (y like x, save_mean [C], save_invstd [C]); running stats updated IN PLACE."""
    _check(x, shortcut)
    z, save_mean, save_invstd = batchnorm_forward_train(x, gamma, beta, running_mean,
                                                        running_var, eps, momentum)
    return relu_forward(_add(z, shortcut)), save_mean, save_invstd


def residual_forward_eval(x, shortcut, gamma, beta, running_mean, running_var, eps=1e-5):
    """-> y = relu(batchnorm_eval(x) + shortcut)."""
    _check(x, shortcut)
    return relu_forward(_add(batchnorm_forward_eval(x, gamma, beta, running_mean, running_var,
                                                    eps), shortcut))


def residual_backward(dy, y, x, gamma, save_mean, save_invstd, compute_dshortcut=True):
    """-> (dx like x, dshortcut like x (None if not compute_dshortcut), dgamma [C], dbeta [C])."""
    dz = relu_backward(dy, y)
    dx, dgamma, dbeta = batchnorm_backward(dz, x, gamma, save_mean, save_invstd)
    return dx, dz if compute_dshortcut else None, dgamma, dbeta

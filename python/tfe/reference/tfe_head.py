"""Fused TFE head: batch-normalised concatenation of two feature vectors, then a linear layer.

    z      = concat(zi [N, Di], ze [N, De]) along features        [N, D], D = Di + De
    z_hat  = batchnorm1d(z; gamma [D], beta [D])  (affine applied)  [N, D]
    logits = z_hat w^T + b,  w [O, D], b [O]                        [N, O]
Batch norm is per feature, so this equals BN1d(zi) ++ BN1d(ze). Semantics as batchnorm.py.
Backward (training mode): dz_hat = dlogits w, dw = dlogits^T z_hat, db = sum_n dlogits;
(dz, dgamma, dbeta) = batchnorm_backward(dz_hat, z, ...), with the normalised input
recomputed from zi, ze, save_mean, save_invstd; dz is split into dzi, dze.
"""
from .batchnorm import batchnorm_backward, batchnorm_forward_eval, batchnorm_forward_train
from .concat import concat_backward, concat_forward
from .linear import linear_backward, linear_forward


def _concat(zi, ze):
    if zi.ndim != 2 or ze.ndim != 2 or zi.shape[0] != ze.shape[0]:
        raise ValueError(f"[tfe_head] zi {zi.shape} and ze {ze.shape} must be [N, Di], [N, De]")
    return concat_forward([zi, ze])


def tfe_head_forward_train(zi, ze, gamma, beta, running_mean, running_var, w, b, eps=1e-5,
                           momentum=0.1):
    """-> (logits [N, O], z_hat [N, D], save_mean [D], save_invstd [D]); running stats IN PLACE."""
    z_hat, save_mean, save_invstd = batchnorm_forward_train(
        _concat(zi, ze), gamma, beta, running_mean, running_var, eps, momentum)
    return linear_forward(z_hat, w, b), z_hat, save_mean, save_invstd


def tfe_head_forward_eval(zi, ze, gamma, beta, running_mean, running_var, w, b, eps=1e-5):
    """-> (logits [N, O], z_hat [N, D]) using the running statistics."""
    z_hat = batchnorm_forward_eval(_concat(zi, ze), gamma, beta, running_mean, running_var, eps)
    return linear_forward(z_hat, w, b), z_hat


def tfe_head_backward(dlogits, zi, ze, z_hat, gamma, save_mean, save_invstd, w):
    """-> (dzi [N, Di], dze [N, De], dgamma [D], dbeta [D], dw [O, D], db [O])."""
    dz_hat, dw, db = linear_backward(dlogits, z_hat, w)
    dz, dgamma, dbeta = batchnorm_backward(dz_hat, _concat(zi, ze), gamma, save_mean,
                                           save_invstd)
    dzi, dze = concat_backward(dz, [zi.shape[1], ze.shape[1]])
    return dzi, dze, dgamma, dbeta, dw, db

"""Batch normalisation with PyTorch semantics (BatchNorm1d on [N, C], BatchNorm2d on [N, C, H, W]).

Per channel c, over the M = N*H*W values x[:, c, ...] (M = N for rank 2):
    training:  mean = (1/M) sum x,   var = (1/M) sum (x - mean)^2     (biased)
               save_invstd = 1 / sqrt(var + eps)
               y = (x - mean) * save_invstd * gamma + beta
               running_mean = (1 - momentum) * running_mean + momentum * mean
               running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
    eval:      y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
"""
from .xp import get_array_module


def _axes_and_shape(x):
    """Reduction axes and the broadcast shape of a per-channel vector for x."""
    if x.ndim == 2:
        return (0,), (1, x.shape[1])
    if x.ndim == 4:
        return (0, 2, 3), (1, x.shape[1], 1, 1)
    raise ValueError(f"[batchnorm] x must be [N, C] or [N, C, H, W], got shape {x.shape}")


def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, eps=1e-5, momentum=0.1):
    """Training-mode batch norm -> (y like x, save_mean [C], save_invstd [C]).

    running_mean and running_var ([C]) are updated IN PLACE (unbiased variance for
    running_var). See the module docstring for the formulas.
    """
    get_array_module(x)
    axes, shape = _axes_and_shape(x)
    M = x.size // x.shape[1]
    if M < 2:
        raise ValueError("[batchnorm] training needs more than one value per channel")
    mean = x.mean(axis=axes)
    xc = x - mean.reshape(shape)
    var = (xc * xc).mean(axis=axes)
    invstd = 1 / (var + eps) ** 0.5
    y = xc * invstd.reshape(shape) * gamma.reshape(shape) + beta.reshape(shape)
    running_mean[...] = (1 - momentum) * running_mean + momentum * mean
    running_var[...] = (1 - momentum) * running_var + momentum * (var * (M / (M - 1)))
    return y, mean, invstd


def batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Eval-mode batch norm: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta."""
    _, shape = _axes_and_shape(x)
    invstd = 1 / (running_var + eps) ** 0.5
    scale = (gamma * invstd).reshape(shape)
    return (x - running_mean.reshape(shape)) * scale + beta.reshape(shape)


def batchnorm_backward(dy, x, gamma, save_mean, save_invstd):
    """Backward of the training-mode forward -> (dx like x, dgamma [C], dbeta [C]).

    With x_hat = (x - save_mean) * save_invstd and M values per channel:
        dbeta  = sum dy
        dgamma = sum dy * x_hat
        dx     = gamma * save_invstd / M * (M * dy - dbeta - x_hat * dgamma)
    """
    axes, shape = _axes_and_shape(x)
    M = x.size // x.shape[1]
    x_hat = (x - save_mean.reshape(shape)) * save_invstd.reshape(shape)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx = (gamma * save_invstd / M).reshape(shape) * (
        M * dy - dbeta.reshape(shape) - x_hat * dgamma.reshape(shape))
    return dx, dgamma, dbeta

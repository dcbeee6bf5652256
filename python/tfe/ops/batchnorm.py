"""Batch normalisation (1d on [N, C], 2d on [N, C, H, W]) as an autograd op."""

from .. import backend
from ..function import Function


class BatchNormTrain(Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, eps, momentum):
        y, mean, invstd = backend.current().batchnorm_forward_train(
            x, gamma, beta, running_mean, running_var, eps, momentum)
        ctx.save_for_backward(x, gamma, mean, invstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, gamma, mean, invstd = ctx.saved
        dx, dgamma, dbeta = backend.current().batchnorm_backward(dy, x, gamma, mean, invstd)
        return dx, dgamma, dbeta, None, None, None, None


class BatchNormEval(Function):
    """Normalises with the running statistics: an affine map per channel."""

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, eps):
        return backend.current().batchnorm_forward_eval(x, gamma, beta, running_mean,
                                                        running_var, eps)

    @staticmethod
    def backward(ctx, dy):
        raise RuntimeError("[batch_norm] backward through evaluation mode is not supported; "
                           "call model.train() before training")


def batch_norm(x, gamma, beta, running_mean, running_var, training, eps=1e-5, momentum=0.1):
    """Training mode uses batch statistics and updates the running ones in place."""
    if training:
        return BatchNormTrain.apply(x, gamma, beta, running_mean, running_var, eps, momentum)
    return BatchNormEval.apply(x, gamma, beta, running_mean, running_var, eps)

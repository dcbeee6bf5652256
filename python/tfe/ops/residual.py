"""The fused residual-block epilogue y = relu(batchnorm(x) + shortcut); with shortcut None,
y = relu(batchnorm(x)) (batch norm and ReLU fused)."""

from .. import backend
from ..function import Function


class ResidualTrain(Function):
    @staticmethod
    def forward(ctx, x, shortcut, gamma, beta, running_mean, running_var, eps, momentum):
        y, mean, invstd = backend.current().residual_forward_train(
            x, shortcut, gamma, beta, running_mean, running_var, eps, momentum)
        ctx.save_for_backward(y, x, gamma, mean, invstd)
        ctx.has_shortcut = shortcut is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        y, x, gamma, mean, invstd = ctx.saved
        dx, dshortcut, dgamma, dbeta = backend.current().residual_backward(
            dy, y, x, gamma, mean, invstd, compute_dshortcut=ctx.has_shortcut)
        return dx, dshortcut, dgamma, dbeta, None, None, None, None


class ResidualEval(Function):
    @staticmethod
    def forward(ctx, x, shortcut, gamma, beta, running_mean, running_var, eps):
        return backend.current().residual_forward_eval(x, shortcut, gamma, beta, running_mean,
                                                       running_var, eps)

    @staticmethod
    def backward(ctx, dy):
        raise RuntimeError("[residual_epilogue] backward through evaluation mode is not "
                           "supported; call model.train() before training")


def residual_epilogue(x, shortcut, gamma, beta, running_mean, running_var, training,
                      eps=1e-5, momentum=0.1):
    if training:
        return ResidualTrain.apply(x, shortcut, gamma, beta, running_mean, running_var, eps,
                                   momentum)
    return ResidualEval.apply(x, shortcut, gamma, beta, running_mean, running_var, eps)

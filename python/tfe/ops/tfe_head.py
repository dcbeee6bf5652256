"""The fused TFE head: BatchNorm1d(z_identity ++ z_emotion) -> linear."""

from .. import backend
from ..function import Function


class TFEHeadTrain(Function):
    @staticmethod
    def forward(ctx, zi, ze, gamma, beta, running_mean, running_var, w, b, eps, momentum):
        logits, z_hat, mean, invstd = backend.current().tfe_head_forward_train(
            zi, ze, gamma, beta, running_mean, running_var, w, b, eps, momentum)
        ctx.save_for_backward(zi, ze, z_hat, gamma, mean, invstd, w)
        return logits

    @staticmethod
    def backward(ctx, dlogits):
        dzi, dze, dgamma, dbeta, dw, db = backend.current().tfe_head_backward(dlogits, *ctx.saved)
        return dzi, dze, dgamma, dbeta, None, None, dw, db, None, None


class TFEHeadEval(Function):
    @staticmethod
    def forward(ctx, zi, ze, gamma, beta, running_mean, running_var, w, b, eps):
        logits, _ = backend.current().tfe_head_forward_eval(zi, ze, gamma, beta, running_mean,
                                                            running_var, w, b, eps)
        return logits

    @staticmethod
    def backward(ctx, dy):
        raise RuntimeError("[tfe_head] backward through evaluation mode is not supported; "
                           "call model.train() before training")


def tfe_head(zi, ze, gamma, beta, running_mean, running_var, w, b, training, eps=1e-5,
             momentum=0.1):
    if training:
        return TFEHeadTrain.apply(zi, ze, gamma, beta, running_mean, running_var, w, b, eps,
                                  momentum)
    return TFEHeadEval.apply(zi, ze, gamma, beta, running_mean, running_var, w, b, eps)

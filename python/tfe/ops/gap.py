"""Global average pooling [N, C, H, W] -> [N, C]."""

from .. import backend
from ..function import Function


class GlobalAvgPool(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.hw = x.shape[2], x.shape[3]
        return backend.current().gap_forward(x)

    @staticmethod
    def backward(ctx, dy):
        return backend.current().gap_backward(dy, *ctx.hw)


def global_avg_pool(x):
    return GlobalAvgPool.apply(x)

"""The paper's two residual blocks (Fig. 4), with the fused epilogue
relu(bn2(conv2(.)) + shortcut).

- IdentityBlock(c): conv3x3 -> BN -> ReLU -> conv3x3 -> BN, + x, ReLU.
- ProjectionBlock(c_in, c_out): the same with the first conv at stride 2 and a shortcut
  of conv1x1 stride 2 -> BN, so the sum has the halved size and new width.
"""

from .. import ops
from .layers import BatchNorm2d, Conv2d
from .module import Module


class _Block(Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(c_out)
        self.conv2 = Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(c_out)

    def shortcut(self, x):
        raise NotImplementedError

    def forward(self, x):
        h = self.bn1.forward_relu(self.conv1(x))
        h = self.conv2(h)
        bn = self.bn2
        return ops.residual_epilogue(h, self.shortcut(x), bn.weight, bn.bias, bn.running_mean,
                                     bn.running_var, self.training, bn.eps, bn.momentum)


class IdentityBlock(_Block):
    def __init__(self, channels):
        super().__init__(channels, channels, 1)

    def shortcut(self, x):
        return x


class ProjectionBlock(_Block):
    def __init__(self, c_in, c_out):
        super().__init__(c_in, c_out, 2)
        self.proj = Conv2d(c_in, c_out, 1, 2, 0, bias=False)
        self.proj_bn = BatchNorm2d(c_out)

    def shortcut(self, x):
        return self.proj_bn(self.proj(x))

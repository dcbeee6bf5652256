"""ResNet18 and ResNet12 for 48x48 grayscale faces, as we read the paper's Fig. 3.

BN follows every convolution and precedes its ReLU; there is no max-pooling; a projection
block (stride-2 3x3 conv, 1x1 stride-2 shortcut) opens each wider stage; global average
pooling gives the 64-d emotion feature, and a linear layer classifies it (baseline).

ResNet18 (1x48x48 input), blocks per stage [3, 3, 2] (`ResNet.layer_table()` prints this
for the model as built; BN parameters counted with their convolution):

| layer                        | output     | parameters |
|------------------------------|------------|-----------:|
| conv3x3 1->16, BN, ReLU      | 16x48x48   |        176 |
| 3 x identity block (16)      | 16x48x48   |     14,016 |
| projection block 16->32      | 32x24x24   |     14,528 |
| 2 x identity block (32)      | 32x24x24   |     37,120 |
| projection block 32->64      | 64x12x12   |     57,728 |
| 1 x identity block (64)      | 64x12x12   |     73,984 |
| global average pool          | 64         |          0 |
| linear 64->8                 | 8          |        520 |
| total                        |            |    198,072 |

17 convolutions + 1 linear = 18 weighted layers. ResNet12: blocks per stage [2, 2, 1]
(11 convolutions + 1 linear = 12 weighted layers, 100,856 parameters).

Reading of Fig. 3: the text names widths n = 16, 16, 32, 64 (a 16-wide stem, then stages of
16, 32 and 64) and says ResNet12 removes identity blocks and keeps a projection block at
the start of each wider stage. Of the readings that give exactly 18 and 12 weighted layers
with these widths, this one ([3, 3, 2] and [2, 2, 1]) keeps 40 % of the FLOPs at 48x48,
the split that the project's performance anchors were measured with.
"""

from .. import nn, ops

STAGE_WIDTHS = (16, 32, 64)


class ResNet(nn.Module):
    def __init__(self, blocks=(3, 3, 2), num_classes=8, in_channels=1, name="resnet"):
        super().__init__()
        self.arch = {"name": name, "blocks": list(blocks), "num_classes": num_classes,
                     "in_channels": in_channels}
        self.stem_conv = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(STAGE_WIDTHS[0])
        layers, c = [], STAGE_WIDTHS[0]
        for stage, (width, count) in enumerate(zip(STAGE_WIDTHS, blocks)):
            for i in range(count):
                if stage > 0 and i == 0:
                    layers.append(nn.ProjectionBlock(c, width))
                else:
                    layers.append(nn.IdentityBlock(width))
                c = width
        self.blocks = nn.Sequential(*layers)
        self.feature_dim = c
        self.fc = nn.Linear(c, num_classes)

    def features(self, x):
        """The 64-d emotion feature (global average pool of the last stage)."""
        h = self.stem_bn.forward_relu(self.stem_conv(x))
        return ops.global_avg_pool(self.blocks(h))

    def forward(self, x):
        return self.fc(self.features(x))

    def layer_table(self, size=48):
        """(layer, output shape, parameter count) rows for a 1 x size x size input."""
        rows = [("conv3x3 + BN (stem)", (16, size, size),
                 _count(self.stem_conv) + _count(self.stem_bn))]
        for i, b in enumerate(self.blocks):
            if isinstance(b, nn.ProjectionBlock):
                size = (size + 1) // 2
            c = b.conv2.weight.shape[0]
            rows.append((f"{type(b).__name__} {i}", (c, size, size), _count(b)))
        rows.append(("global average pool", (self.feature_dim,), 0))
        rows.append(("linear", (self.fc.weight.shape[0],), _count(self.fc)))
        return rows


def _count(module):
    return module.num_parameters()


def resnet18(num_classes=8, in_channels=1):
    return ResNet((3, 3, 2), num_classes, in_channels, name="resnet18")


def resnet12(num_classes=8, in_channels=1):
    return ResNet((2, 2, 1), num_classes, in_channels, name="resnet12")

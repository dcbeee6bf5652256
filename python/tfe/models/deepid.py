"""DeepID2's ConvNet (Sun et al.), the identity network of the paper, for 48x48 input.

| layer                               | output    | parameters |
|-------------------------------------|-----------|-----------:|
| conv4x4 1->20, ReLU                 | 20x45x45  |        340 |
| max-pool 2x2                        | 20x22x22  |          0 |
| conv3x3 20->40, ReLU                | 40x20x20  |      7,240 |
| max-pool 2x2                        | 40x10x10  |          0 |
| conv3x3 40->60, ReLU                | 60x8x8    |     21,660 |
| max-pool 2x2 (pool3)                | 60x4x4    |          0 |
| conv2x2 60->80, ReLU (conv4)        | 80x3x3    |     19,280 |
| FC(pool3 ++ conv4: 960 + 720) -> 160, ReLU  (the DeepID feature) | 160 | 268,960 |
| dropout 0.4                         | 160       |          0 |
| linear 160 -> identities (pre-training only) | P  | 161 P    |

The 160-d layer sees both the pooled third and the fourth convolution, as in DeepID2;
the softmax over identities is used only for pre-training and dropped in the TFE model.
"""

from .. import nn, ops


class DeepID(nn.Module):
    feature_dim = 160

    def __init__(self, num_identities, in_channels=1, dropout=0.4, seed=0, input_size=48):
        super().__init__()
        self.arch = {"name": "deepid", "num_identities": num_identities,
                     "in_channels": in_channels, "dropout": dropout}
        self.conv1 = nn.Conv2d(in_channels, 20, 4)
        self.conv2 = nn.Conv2d(20, 40, 3)
        self.conv3 = nn.Conv2d(40, 60, 3)
        self.conv4 = nn.Conv2d(60, 80, 2)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(_concat_width(input_size), self.feature_dim)
        self.dropout = nn.Dropout(dropout, seed)
        self.classifier = nn.Linear(self.feature_dim, num_identities)

    def features(self, x):
        """The 160-d identity feature (after ReLU, before dropout)."""
        h = self.pool(ops.relu(self.conv1(x)))
        h = self.pool(ops.relu(self.conv2(h)))
        pool3 = self.pool(ops.relu(self.conv3(h)))
        conv4 = ops.relu(self.conv4(pool3))
        z = ops.concat([ops.flatten(pool3), ops.flatten(conv4)])
        return ops.relu(self.fc(z))

    def forward(self, x):
        return self.classifier(self.dropout(self.features(x)))


def _concat_width(size):
    """Width of pool3 ++ conv4 for size x size input (1680 at 48x48)."""
    for k in (4, 3, 3):  # valid convolution, then 2x2 max-pool (floor)
        size = (size - k + 1) // 2
    return 60 * size * size + 80 * (size - 1) ** 2

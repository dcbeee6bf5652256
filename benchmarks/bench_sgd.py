"""One SGD step (momentum 0.9, weight decay) over every ResNet18 parameter tensor."""

import numpy as np

import shapes


def test_sgd_step_resnet18(benchmark, native, throughput, randn):
    params = [randn(*s) for s in shapes.RESNET18_PARAMS]
    grads = [randn(*s, scale=1e-3) for s in shapes.RESNET18_PARAMS]
    bufs = [np.zeros(s, np.float32) for s in shapes.RESNET18_PARAMS]
    benchmark.group = "sgd"
    benchmark(native.sgd_step, params, grads, bufs, 1e-3, shapes.SGD_MOMENTUM,
              shapes.SGD_WEIGHT_DECAY, False)
    throughput(benchmark, nbytes=shapes.SGD_BYTES_PER_PARAM * shapes.RESNET18_PARAM_COUNT,
               tensors=len(params), params=shapes.RESNET18_PARAM_COUNT)

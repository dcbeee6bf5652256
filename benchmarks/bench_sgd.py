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


# ---- tfe vs PyTorch: this op's cases of benchmarks/compare_torch.py --------------------------

TORCH_ORDER = 120  # where its sections come in compare_torch.py's output
TORCH_SECTIONS = [  # (section, title) in output order
    ("sgd", "SGD step (momentum, weight decay) vs torch.optim.SGD.step"),
]


def torch_cases(setting):
    """One step over ResNet18's parameters against torch.optim.SGD.step."""
    native, torch, randn, case = setting.native, setting.torch, setting.randn, setting.case
    cases = []
    lr, sm, wd = 1e-3, shapes.SGD_MOMENTUM, shapes.SGD_WEIGHT_DECAY
    p0 = [randn(*s) for s in shapes.RESNET18_PARAMS]
    g0 = [randn(*s, scale=1e-2) for s in shapes.RESNET18_PARAMS]

    def sgd_state():
        ps = [a.copy() for a in p0]
        bufs = [np.zeros_like(a) for a in p0]
        tps = [torch.from_numpy(a.copy()).requires_grad_(True) for a in p0]
        for tp, g in zip(tps, g0):
            tp.grad = torch.from_numpy(g.copy())
        opt = torch.optim.SGD(tps, lr=lr, momentum=sm, weight_decay=wd)
        return ps, bufs, tps, opt

    ps, bufs, tps, opt = sgd_state()

    def sgd_check():
        ps_, bufs_, tps_, opt_ = sgd_state()
        for _ in range(2):  # the second step exercises the momentum buffers
            native.sgd_step(ps_, g0, bufs_, lr, sm, wd, False)
            opt_.step()
        return [("params", np.concatenate([a.ravel() for a in ps_]),
                 torch.cat([t.detach().ravel() for t in tps_])),
                ("momentum_bufs", np.concatenate([a.ravel() for a in bufs_]),
                 torch.cat([opt_.state[t]["momentum_buffer"].ravel() for t in tps_]))]

    cases.append(case("sgd", "sgd_resnet18",
                      f"{len(p0)} tensors, {shapes.RESNET18_PARAM_COUNT} floats",
                      1, shapes.SGD_BYTES_PER_PARAM * shapes.RESNET18_PARAM_COUNT, "GB/s",
                      lambda: native.sgd_step(ps, g0, bufs, lr, sm, wd, False), opt.step,
                      sgd_check))
    return cases

"""Stochastic gradient descent with momentum, PyTorch semantics (dampening 0).

For every parameter p with gradient g and momentum buffer buf (buffers start at zero):
    d = g + weight_decay * p            (only when weight_decay != 0)
    if momentum != 0:
        buf = momentum * buf + d
        d = d + momentum * buf if nesterov else buf
    p = p - lr * d
"""


def sgd_step(params, grads, momentum_bufs, lr, momentum, weight_decay, nesterov):
    """One step over lists of arrays; params and momentum_bufs are updated IN PLACE.

    momentum_bufs may be None when momentum == 0 (the buffers are then unused). Returns None.
    """
    if len(params) != len(grads) or (momentum_bufs is not None
                                     and len(momentum_bufs) != len(params)):
        raise ValueError("[sgd] params, grads and momentum_bufs must have equal lengths")
    if momentum != 0 and momentum_bufs is None:
        raise ValueError("[sgd] momentum != 0 needs momentum buffers")
    for j, (p, g) in enumerate(zip(params, grads)):
        d = g + weight_decay * p if weight_decay != 0 else g
        if momentum != 0:
            buf = momentum_bufs[j]
            buf[...] = momentum * buf + d
            d = d + momentum * buf if nesterov else buf
        p -= lr * d

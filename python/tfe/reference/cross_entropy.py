"""Softmax cross-entropy over logits [N, K], with hard (int64 labels) or soft targets.

    log_softmax(z)[n, k] = z[n, k] - m[n] - log sum_j exp(z[n, j] - m[n]),  m[n] = max_j z[n, j]
    prob = exp(log_softmax(z))
    hard: loss = -(1/N) sum_n log_softmax(z)[n, label[n]]
          dlogits = (prob - onehot(label)) * dloss / N
    soft: loss = -(1/N) sum_n sum_k target[n, k] * log_softmax(z)[n, k]
          dlogits = (prob * sum_k target[n, k] - target) * dloss / N
The loss is returned as a 0-d array of the logits' dtype.
"""
from .xp import get_array_module


def _log_softmax(xp, logits):
    if logits.ndim != 2:
        raise ValueError(f"[cross_entropy] logits must be [N, K], got shape {logits.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def _check_labels(xp, labels, N, K):
    if labels.shape != (N,) or labels.dtype.kind not in "iu":
        raise ValueError(f"[cross_entropy] labels must be integers of shape ({N},)")
    if N and (int(labels.min()) < 0 or int(labels.max()) >= K):
        raise ValueError(f"[cross_entropy] labels must lie in [0, {K})")


def cross_entropy_forward(logits, labels):
    """logits [N, K], labels int [N] -> (loss 0-d, prob [N, K])."""
    xp = get_array_module(logits, labels)
    N, K = logits.shape
    _check_labels(xp, labels, N, K)
    logp = _log_softmax(xp, logits)
    loss = -logp[xp.arange(N), labels].mean()
    return xp.asarray(loss, dtype=logits.dtype), xp.exp(logp)


def cross_entropy_backward(prob, labels, dloss=1.0):
    """dlogits [N, K] = (prob - onehot(labels)) * dloss / N."""
    xp = get_array_module(prob, labels)
    N, K = prob.shape
    _check_labels(xp, labels, N, K)
    d = prob.copy()
    d[xp.arange(N), labels] -= 1
    return d * prob.dtype.type(dloss / N)


def cross_entropy_soft_forward(logits, target):
    """logits [N, K], target [N, K] -> (loss 0-d, prob [N, K])."""
    xp = get_array_module(logits, target)
    if target.shape != logits.shape:
        raise ValueError(f"[cross_entropy] target {target.shape} != logits {logits.shape}")
    logp = _log_softmax(xp, logits)
    loss = -(target * logp).sum(axis=1).mean()
    return xp.asarray(loss, dtype=logits.dtype), xp.exp(logp)


def cross_entropy_soft_backward(prob, target, dloss=1.0):
    """dlogits [N, K] = (prob * sum_k target - target) * dloss / N."""
    N = prob.shape[0]
    d = prob * target.sum(axis=1, keepdims=True) - target
    return d * prob.dtype.type(dloss / N)

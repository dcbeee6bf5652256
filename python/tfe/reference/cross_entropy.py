"""Softmax cross-entropy over logits [N, K]; the target is class labels (integers [N]) or
class probabilities ([N, K], soft targets), told apart by its dtype.

    log_softmax(z)[n, k] = z[n, k] - m[n] - log sum_j exp(z[n, j] - m[n]),  m[n] = max_j z[n, j]
    prob = exp(log_softmax(z))
    labels: loss = -(1/N) sum_n log_softmax(z)[n, label[n]]
            dlogits = (prob - onehot(label)) * dloss / N
    probabilities: loss = -(1/N) sum_n sum_k target[n, k] * log_softmax(z)[n, k]
                   dlogits = (prob * sum_k target[n, k] - target) * dloss / N
The loss is returned as a 0-d array of the logits' dtype.
"""
from .xp import get_array_module


def _log_softmax(xp, logits):
    if logits.ndim != 2:
        raise ValueError(f"[cross_entropy] logits must be [N, K], got shape {logits.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def _is_labels(target):
    """Class labels (an integer array [N]) rather than class probabilities (float [N, K])."""
    return target.dtype.kind in "iu"


def _check_labels(xp, labels, N, K):
    if labels.shape != (N,):
        raise ValueError(f"[cross_entropy] labels must be integers of shape ({N},)")
    if N and (int(labels.min()) < 0 or int(labels.max()) >= K):
        raise ValueError(f"[cross_entropy] labels must lie in [0, {K})")


def _check_probabilities(target, shape):
    if target.shape != shape:
        raise ValueError(f"[cross_entropy] target {target.shape} != logits {shape}")


def cross_entropy_forward(logits, target):
    """logits [N, K]; target: labels int [N] or probabilities [N, K] -> (loss 0-d, prob [N, K]).

    loss = mean over the batch of -log softmax at the label, or of -sum_k target_k log
    softmax_k for probabilities."""
    xp = get_array_module(logits, target)
    N, K = logits.shape
    logp = _log_softmax(xp, logits)
    if _is_labels(target):
        _check_labels(xp, target, N, K)
        loss = -logp[xp.arange(N), target].mean()
    else:
        _check_probabilities(target, logits.shape)
        loss = -(target * logp).sum(axis=1).mean()
    return xp.asarray(loss, dtype=logits.dtype), xp.exp(logp)


def cross_entropy_backward(prob, target, dloss=1.0):
    """dlogits [N, K] = (prob - onehot(labels)) * dloss / N, or, for probabilities,
    (prob * sum_k target - target) * dloss / N."""
    xp = get_array_module(prob, target)
    N, K = prob.shape
    if _is_labels(target):
        _check_labels(xp, target, N, K)
        d = prob.copy()
        d[xp.arange(N), target] -= 1
    else:
        _check_probabilities(target, prob.shape)
        d = prob * target.sum(axis=1, keepdims=True) - target
    return d * prob.dtype.type(dloss / N)

"""Cosine-distance loss of predictions [N, D] against fixed targets [N, D] (distillation):

    rows  = {n : |t_n| > 0}                  (a zero target row means "no target")
    M     = |rows|
    cos_n = <p_n, t_n> / (max(|p_n|, eps) |t_n|),  eps = 1e-8
    loss  = weight * (1/M) sum_{n in rows} (1 - cos_n)          (0 when M = 0)
    dp_n  = -(weight * dloss / M) * (t_n / (max(|p_n|, eps) |t_n|) - cos_n p_n / |p_n|^2)
            for n in rows (|p_n| > eps), else 0
The targets are not differentiated. Computed in float64 and returned in the predictions'
dtype (the loss as a 0-d array).
"""
from .xp import get_array_module

EPS = 1e-8


def _check(p, t):
    if p.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"[cosine_loss] pred must be [N, D] and target the same shape, got "
                         f"{p.shape} and {t.shape}")


def _terms(xp, pred, target):
    p, t = pred.astype(xp.float64), target.astype(xp.float64)
    pn = xp.linalg.norm(p, axis=1)
    tn = xp.linalg.norm(t, axis=1)
    rows = tn > 0
    scale = xp.maximum(pn, EPS) * xp.where(rows, tn, 1.0)
    cos = (p * t).sum(axis=1) / scale
    return p, t, pn, rows, scale, cos


def cosine_loss_forward(pred, target, weight=1.0):
    """pred [N, D], target [N, D] -> loss 0-d."""
    xp = get_array_module(pred, target)
    _check(pred, target)
    _, _, _, rows, _, cos = _terms(xp, pred, target)
    m = int(rows.sum())
    loss = weight * float((1.0 - cos)[rows].sum()) / m if m else 0.0
    return xp.asarray(loss, dtype=pred.dtype)


def cosine_loss_backward(pred, target, weight=1.0, dloss=1.0):
    """dpred [N, D] (see the module docstring)."""
    xp = get_array_module(pred, target)
    _check(pred, target)
    p, t, pn, rows, scale, cos = _terms(xp, pred, target)
    m = int(rows.sum())
    d = xp.zeros_like(p)
    live = rows & (pn > EPS)
    if m:
        g = -(weight * dloss / m)
        d[live] = g * (t[live] / scale[live, None]
                       - cos[live, None] * p[live] / (pn[live, None] ** 2))
    return d.astype(pred.dtype)

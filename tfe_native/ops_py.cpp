// Python bindings of every op of the table csrc/ops/ops.def: validate once (dtype, rank, shape,
// device, hyper-parameters; bad input raises ValueError("[op] ...")), allocate the outputs
// on the inputs' device, release the GIL and call the dispatcher. Names, arguments and
// return values mirror the reference implementation in python/tfe/reference/ exactly, so
// tests compare them 1:1.
//
// Backward bindings return fresh parameter gradients, or accumulate into the arrays passed
// as dw=/db=/dgamma=/dbeta=. The autograd layer (python/tfe/function.py) takes the fresh
// ones; the accumulating form is for callers that keep their own gradient buffers.
#include <algorithm>
#include <cmath>
#include <limits>

#include "bindings.h"
#include "ops/cpu_kernels.h"
#include "ops/dispatch.h"

namespace tfe::binding {

namespace {

using namespace pybind11::literals;

template <class Fn>
void run(Fn&& fn) {
  py::gil_scoped_release nogil;
  fn();
}

py::object opt(const Tensor& t) { return t.defined() ? wrap(t) : py::none(); }

std::string dims(int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }

void require_nonempty(const Args& a, const Tensor& t, const char* name) {
  a.require(t.numel() > 0, std::string(name) + ": empty tensor of shape " + shape_str(t.shape()));
}

// A parameter-gradient buffer: the caller's accumulator (updated in place) or new zeros.
Tensor accumulator(Args& a, py::handle obj, const char* name, const Shape& shape) {
  if (obj.is_none()) return a.zeros(shape);
  Tensor t = a.inout(obj, name);
  a.expect_shape(t, name, shape);
  return t;
}

// A per-channel vector of length C.
Tensor channel_vec(Args& a, py::handle obj, const char* name, int64_t C, bool inout = false) {
  Tensor t = inout ? a.inout(obj, name) : a.tensor(obj, name);
  a.expect_shape(t, name, {C});
  return t;
}

void check_eps_momentum(const Args& a, double eps, double momentum) {
  a.require(eps > 0 && std::isfinite(eps), "eps must be a positive number, got " + std::to_string(eps));
  a.require(momentum >= 0 && momentum <= 1,
            "momentum must be in [0, 1], got " + std::to_string(momentum));
}

// Activations of batch norm and the residual epilogue: [N, C] or [N, C, H, W].
Tensor bn_input(Args& a, py::handle obj, const char* name) {
  Tensor x = a.tensor(obj, name);
  a.require(x.dim() == 2 || x.dim() == 4,
            std::string(name) + ": expected [N, C] or [N, C, H, W], got shape " + shape_str(x.shape()));
  require_nonempty(a, x, name);
  return x;
}

void check_train_count(const Args& a, const Tensor& x) {
  int64_t count = x.numel() / x.size(1);
  a.require(count > 1, "training mode needs more than one value per channel, got x of shape " +
                           shape_str(x.shape()));
}

// The binding of each op of the table (csrc/ops/ops.def), named as the op: bind_ops registers
// them with the table's keyword arguments and docstrings.
namespace op_impl {

// ---- conv2d geometry --------------------------------------------------------------------------
struct ConvShape {
  int64_t N, C, H, W, K, k, Ho, Wo;
};

ConvShape conv_shape(Args& a, const Tensor& x, const Tensor& w, int stride, int pad) {
  require_nonempty(a, x, "x");
  require_nonempty(a, w, "w");
  ConvShape s{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), 0, 0};
  a.require(w.size(1) == s.C, "w: expects " + std::to_string(w.size(1)) +
                                  " input channels but x has " + std::to_string(s.C));
  a.require(w.size(2) == w.size(3), "w: kernel must be square, got " + dims(w.size(2), w.size(3)));
  a.require(stride >= 1, "stride must be >= 1, got " + std::to_string(stride));
  a.require(pad >= 0, "pad must be >= 0, got " + std::to_string(pad));
  // Kernels index with int: the padded input must stay well inside its range.
  a.require(std::max(s.H, s.W) + 2 * int64_t(pad) < (int64_t(1) << 30),
            "pad " + std::to_string(pad) + " makes the padded input too large");
  a.require(s.H + 2 * pad >= s.k && s.W + 2 * pad >= s.k,
            "kernel " + dims(s.k, s.k) + " is larger than the padded input " +
                dims(s.H + 2 * pad, s.W + 2 * pad));
  s.Ho = (s.H + 2 * pad - s.k) / stride + 1;
  s.Wo = (s.W + 2 * pad - s.k) / stride + 1;
  return s;
}

// A stride past the padded input gives one window per axis whatever its value; using
// the smallest such stride keeps the kernels' index arithmetic far from int overflow.
int effective_stride(const ConvShape& s, int stride, int pad) {
  int64_t span = std::max(s.H, s.W) + 2 * int64_t(pad);
  return static_cast<int>(std::min<int64_t>(stride, span));
}

// Labels (a cross-entropy target) must index a class: checked here so kernels never read
// out of bounds.
void check_labels(const Args& a, const Tensor& labels, int64_t N, int64_t K) {
  a.expect_shape(labels, "target", {N});
  // Labels on a GPU are not read back here (that would synchronise every step): the
  // caller vouches for them (tfe-train's come from its data sets, in range by construction).
  if (labels.device().is_cuda()) return;
  const int64_t* l = labels.data<int64_t>();
  for (int64_t i = 0; i < N; ++i)
    if (l[i] < 0 || l[i] >= K)
      fail(a.op(), "target[" + std::to_string(i) + "] = " + std::to_string(l[i]) +
                       " is not a class in [0, " + std::to_string(K) + ")");
}

auto conv2d_forward(py::object x, py::object w, py::object b, int stride, int pad) {
  Args a("conv2d_forward");
  Tensor X = a.tensor(x, "x", 4), W = a.tensor(w, "w", 4);
  ConvShape s = conv_shape(a, X, W, stride, pad);
  Tensor B = a.optional(b, "b");
  if (B.defined()) a.expect_shape(B, "b", {s.K});
  Tensor Y = a.out({s.N, s.K, s.Ho, s.Wo});
  stride = effective_stride(s, stride, pad);
  run([&] { ops::conv2d_forward(Y, X, W, B, stride, pad); });
  return Y;
}

auto conv2d_backward(py::object dy, py::object x, py::object w, int stride, int pad, py::object dw,
                     py::object db, bool compute_dx, bool compute_db) {
  Args a("conv2d_backward");
  Tensor X = a.tensor(x, "x", 4), W = a.tensor(w, "w", 4);
  ConvShape s = conv_shape(a, X, W, stride, pad);
  Tensor DY = a.tensor(dy, "dy", 4);
  a.expect_shape(DY, "dy", {s.N, s.K, s.Ho, s.Wo});
  Tensor DW = accumulator(a, dw, "dw", W.shape());
  a.require(compute_db || db.is_none(), "db given but compute_db is False");
  Tensor DB = compute_db ? accumulator(a, db, "db", {s.K}) : Tensor();
  Tensor DX = compute_dx ? a.out(X.shape()) : Tensor();
  stride = effective_stride(s, stride, pad);
  run([&] { ops::conv2d_backward(DX, DW, DB, DY, X, W, stride, pad); });
  return py::make_tuple(opt(DX), DW, opt(DB));
}

auto batchnorm_forward_train(py::object x, py::object gamma, py::object beta,
                             py::object running_mean, py::object running_var, double eps,
                             double momentum) {
  Args a("batchnorm_forward_train");
  Tensor X = bn_input(a, x, "x");
  int64_t C = X.size(1);
  Tensor G = channel_vec(a, gamma, "gamma", C), B = channel_vec(a, beta, "beta", C);
  Tensor RM = channel_vec(a, running_mean, "running_mean", C, true);
  Tensor RV = channel_vec(a, running_var, "running_var", C, true);
  check_eps_momentum(a, eps, momentum);
  check_train_count(a, X);
  Tensor Y = a.out(X.shape()), M = a.out({C}), IS = a.out({C});
  run([&] { ops::batchnorm_forward_train(Y, M, IS, RM, RV, X, G, B, eps, momentum); });
  return py::make_tuple(Y, M, IS);
}

auto batchnorm_forward_eval(py::object x, py::object gamma, py::object beta,
                            py::object running_mean, py::object running_var, double eps) {
  Args a("batchnorm_forward_eval");
  Tensor X = bn_input(a, x, "x");
  int64_t C = X.size(1);
  Tensor G = channel_vec(a, gamma, "gamma", C), B = channel_vec(a, beta, "beta", C);
  Tensor RM = channel_vec(a, running_mean, "running_mean", C);
  Tensor RV = channel_vec(a, running_var, "running_var", C);
  check_eps_momentum(a, eps, 0.0);
  Tensor Y = a.out(X.shape());
  run([&] { ops::batchnorm_forward_eval(Y, X, G, B, RM, RV, eps); });
  return Y;
}

auto batchnorm_backward(py::object dy, py::object x, py::object gamma, py::object save_mean,
                        py::object save_invstd, py::object dgamma, py::object dbeta) {
  Args a("batchnorm_backward");
  Tensor X = bn_input(a, x, "x");
  int64_t C = X.size(1);
  Tensor DY = a.tensor(dy, "dy");
  a.expect_shape(DY, "dy", X.shape());
  Tensor G = channel_vec(a, gamma, "gamma", C);
  Tensor M = channel_vec(a, save_mean, "save_mean", C);
  Tensor IS = channel_vec(a, save_invstd, "save_invstd", C);
  Tensor DG = accumulator(a, dgamma, "dgamma", {C});
  Tensor DB = accumulator(a, dbeta, "dbeta", {C});
  Tensor DX = a.out(X.shape());
  run([&] { ops::batchnorm_backward(DX, DG, DB, DY, X, G, M, IS); });
  return py::make_tuple(DX, DG, DB);
}

auto relu_forward(py::object x) {
  Args a("relu_forward");
  Tensor X = a.tensor(x, "x");
  Tensor Y = a.out(X.shape());
  run([&] { ops::relu_forward(Y, X); });
  return Y;
}

auto relu_backward(py::object dy, py::object y) {
  Args a("relu_backward");
  Tensor DY = a.tensor(dy, "dy"), Y = a.tensor(y, "y");
  a.expect_shape(DY, "dy", Y.shape());
  Tensor DX = a.out(Y.shape());
  run([&] { ops::relu_backward(DX, DY, Y); });
  return DX;
}

auto add_forward(py::object a_, py::object b_) {
  Args a("add_forward");
  Tensor A = a.tensor(a_, "a"), B = a.tensor(b_, "b");
  a.expect_shape(B, "b", A.shape());
  Tensor Y = a.out(A.shape());
  run([&] { ops::add_forward(Y, A, B); });
  return Y;
}

auto maxpool2d_forward(py::object x, int k, py::object stride_, int pad) {
  Args a("maxpool2d_forward");
  Tensor X = a.tensor(x, "x", 4);
  require_nonempty(a, X, "x");
  int stride = stride_.is_none() ? k : stride_.cast<int>();
  a.require(k >= 1, "k must be >= 1, got " + std::to_string(k));
  a.require(stride >= 1, "stride must be >= 1, got " + std::to_string(stride));
  a.require(pad >= 0 && 2 * int64_t(pad) <= k,
            "pad must be in [0, k/2], got " + std::to_string(pad));
  int64_t H = X.size(2), W = X.size(3);
  a.require(H + 2 * pad >= k && W + 2 * pad >= k,
            "window " + dims(k, k) + " is larger than the padded input " +
                dims(H + 2 * pad, W + 2 * pad));
  int64_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
  Tensor Y = a.out({X.size(0), X.size(1), Ho, Wo});
  Tensor AM = a.out(Y.shape(), DType::i32);
  run([&] { ops::maxpool2d_forward(Y, AM, X, k, stride, pad); });
  return py::make_tuple(Y, AM);
}

auto maxpool2d_backward(py::object dy, py::object argmax, int64_t H, int64_t W) {
  Args a("maxpool2d_backward");
  Tensor DY = a.tensor(dy, "dy", 4);
  Tensor AM = a.tensor(argmax, "argmax", 4, DType::i32);
  a.expect_shape(AM, "argmax", DY.shape());
  a.require(H >= 1 && W >= 1, "H and W must be >= 1, got " + dims(H, W));
  if (!AM.device().is_cuda()) {
    const int32_t* p = AM.data<int32_t>();
    for (int64_t i = 0, n = AM.numel(); i < n; ++i)
      if (p[i] < 0 || p[i] >= H * W)  // the message is built only on failure
        fail(a.op(), "argmax[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                         " is outside the " + dims(H, W) + " input plane");
  }
  Tensor DX = a.out({DY.size(0), DY.size(1), H, W});
  run([&] { ops::maxpool2d_backward(DX, DY, AM); });
  return DX;
}

auto gap_forward(py::object x) {
  Args a("gap_forward");
  Tensor X = a.tensor(x, "x", 4);
  require_nonempty(a, X, "x");
  Tensor Y = a.out({X.size(0), X.size(1)});
  run([&] { ops::gap_forward(Y, X); });
  return Y;
}

auto gap_backward(py::object dy, int64_t H, int64_t W) {
  Args a("gap_backward");
  Tensor DY = a.tensor(dy, "dy", 2);
  a.require(H >= 1 && W >= 1, "H and W must be >= 1, got " + dims(H, W));
  Tensor DX = a.out({DY.size(0), DY.size(1), H, W});
  run([&] { ops::gap_backward(DX, DY); });
  return DX;
}

// x[N, I] and w[O, I] of linear.
void check_linear(Args& a, const Tensor& X, const Tensor& W) {
  require_nonempty(a, X, "x");
  require_nonempty(a, W, "w");
  a.require(W.size(1) == X.size(1), "w: expects " + std::to_string(W.size(1)) +
                                        " input features but x has " + std::to_string(X.size(1)));
}

auto linear_forward(py::object x, py::object w, py::object b) {
  Args a("linear_forward");
  Tensor X = a.tensor(x, "x", 2), W = a.tensor(w, "w", 2);
  check_linear(a, X, W);
  Tensor B = a.optional(b, "b");
  if (B.defined()) a.expect_shape(B, "b", {W.size(0)});
  Tensor Y = a.out({X.size(0), W.size(0)});
  run([&] { ops::linear_forward(Y, X, W, B); });
  return Y;
}

auto linear_backward(py::object dy, py::object x, py::object w, py::object dw, py::object db,
                     bool compute_dx) {
  Args a("linear_backward");
  Tensor X = a.tensor(x, "x", 2), W = a.tensor(w, "w", 2);
  check_linear(a, X, W);
  Tensor DY = a.tensor(dy, "dy", 2);
  a.expect_shape(DY, "dy", {X.size(0), W.size(0)});
  Tensor DW = accumulator(a, dw, "dw", W.shape());
  Tensor DB = accumulator(a, db, "db", {W.size(0)});
  Tensor DX = compute_dx ? a.out(X.shape()) : Tensor();
  run([&] { ops::linear_backward(DX, DW, DB, DY, X, W); });
  return py::make_tuple(opt(DX), DW, DB);
}

void check_p(const Args& a, double p) {
  a.require(p >= 0 && p < 1, "p must be in [0, 1), got " + std::to_string(p));
}

auto dropout_forward(py::object x, double p, uint64_t seed) {
  Args a("dropout_forward");
  Tensor X = a.tensor(x, "x");
  check_p(a, p);
  Tensor Y = a.out(X.shape()), MASK = a.out(X.shape(), DType::u8);
  run([&] { ops::dropout_forward(Y, MASK, X, static_cast<float>(p), seed); });
  return py::make_tuple(Y, MASK);
}

auto dropout_backward(py::object dy, py::object mask, double p) {
  Args a("dropout_backward");
  Tensor DY = a.tensor(dy, "dy");
  Tensor MASK = a.tensor(mask, "mask", -1, DType::u8);
  a.expect_shape(MASK, "mask", DY.shape());
  check_p(a, p);
  Tensor DX = a.out(DY.shape());
  run([&] { ops::dropout_backward(DX, DY, MASK, static_cast<float>(p)); });
  return DX;
}

auto concat_forward(std::vector<py::object> xs) {
  Args a("concat_forward");
  a.require(!xs.empty(), "xs: needs at least one tensor");
  std::vector<Tensor> ts;
  int64_t channels = 0;
  for (size_t j = 0; j < xs.size(); ++j) {
    std::string name = "xs[" + std::to_string(j) + "]";
    Tensor t = a.tensor(xs[j], name.c_str());
    a.require(t.dim() >= 2, name + ": expected at least 2 dimensions, got shape " +
                                shape_str(t.shape()));
    if (!ts.empty()) {
      Shape want = ts[0].shape();
      want[1] = t.size(1);
      a.expect_shape(t, name.c_str(), want);
    }
    channels += t.size(1);
    ts.push_back(t);
  }
  Shape shape = ts[0].shape();
  shape[1] = channels;
  Tensor Y = a.out(shape);
  run([&] { ops::concat_forward(Y, ts); });
  return Y;
}

auto concat_backward(py::object dy, std::vector<int64_t> sizes) {
  Args a("concat_backward");
  Tensor DY = a.tensor(dy, "dy");
  a.require(DY.dim() >= 2, "dy: expected at least 2 dimensions");
  a.require(!sizes.empty(), "sizes: needs at least one entry");
  int64_t total = 0;
  for (int64_t s : sizes) {
    a.require(s >= 0, "sizes: negative entry " + std::to_string(s));
    total += s;
  }
  a.require(total == DY.size(1), "sizes add up to " + std::to_string(total) +
                                     " but dy has " + std::to_string(DY.size(1)) +
                                     " channels");
  std::vector<Tensor> dxs;
  for (int64_t s : sizes) {
    Shape shape = DY.shape();
    shape[1] = s;
    dxs.push_back(a.out(shape));
  }
  run([&] { ops::concat_backward(dxs, DY); });
  py::list out;
  for (const Tensor& t : dxs) out.append(wrap(t));
  return out;
}

Tensor logits_arg(Args& a, py::object obj, const char* name) {
  Tensor t = a.tensor(obj, name, 2);
  require_nonempty(a, t, name);
  return t;
}

// A cross-entropy target: class labels (an integer array: int64 [N], each in [0, K)) or class
// probabilities (float32 [N, K]), told apart by the array's dtype.
Tensor target_arg(Args& a, py::handle obj, const Tensor& logits) {
  if (obj.is_none()) fail(a.op(), "target: required, got None");
  const DType dt = to_tensor(obj, a.op(), "target").dtype();
  if (dt == DType::i64 || dt == DType::i32 || dt == DType::u8) {
    Tensor labels = a.tensor(obj, "target", 1, DType::i64);
    check_labels(a, labels, logits.size(0), logits.size(1));
    return labels;
  }
  Tensor target = a.tensor(obj, "target", 2);
  a.expect_shape(target, "target", logits.shape());
  return target;
}

auto cross_entropy_forward(py::object logits, py::object target) {
  Args a("cross_entropy_forward");
  Tensor L = logits_arg(a, logits, "logits");
  Tensor T = target_arg(a, target, L);
  Tensor LOSS = a.out({}), P = a.out(L.shape());
  run([&] { ops::cross_entropy_forward(LOSS, P, L, T); });
  return py::make_tuple(LOSS, P);
}

auto cross_entropy_backward(py::object prob, py::object target, double dloss) {
  Args a("cross_entropy_backward");
  Tensor P = logits_arg(a, prob, "prob");
  Tensor T = target_arg(a, target, P);
  Tensor DL = a.out(P.shape());
  run([&] { ops::cross_entropy_backward(DL, P, T, static_cast<float>(dloss)); });
  return DL;
}

auto sgd_step(std::vector<py::object> params, std::vector<py::object> grads,
              py::object momentum_bufs, double lr, double momentum, double weight_decay,
              bool nesterov) {
  Args a("sgd_step");
  a.require(params.size() == grads.size(),
            "params and grads differ in length (" + std::to_string(params.size()) +
                " vs " + std::to_string(grads.size()) + ")");
  a.require(lr >= 0 && std::isfinite(lr), "lr must be >= 0, got " + std::to_string(lr));
  a.require(momentum >= 0 && momentum < 1,
            "momentum must be in [0, 1), got " + std::to_string(momentum));
  a.require(weight_decay >= 0, "weight_decay must be >= 0");
  a.require(!nesterov || momentum > 0, "nesterov needs momentum > 0");
  std::vector<py::object> bufs;
  if (!momentum_bufs.is_none()) bufs = momentum_bufs.cast<std::vector<py::object>>();
  a.require(momentum == 0 || bufs.size() == params.size(),
            "momentum_bufs: one buffer per parameter is needed when momentum > 0");
  std::vector<Tensor> P, G, M;
  for (size_t i = 0; i < params.size(); ++i) {
    std::string pi = "params[" + std::to_string(i) + "]";
    std::string gi = "grads[" + std::to_string(i) + "]";
    P.push_back(a.inout(params[i], pi.c_str()));
    G.push_back(a.tensor(grads[i], gi.c_str()));
    a.expect_shape(G.back(), gi.c_str(), P.back().shape());
    if (momentum > 0) {
      std::string mi = "momentum_bufs[" + std::to_string(i) + "]";
      M.push_back(a.inout(bufs[i], mi.c_str()));
      a.expect_shape(M.back(), mi.c_str(), P.back().shape());
    }
  }
  run([&] { ops::sgd_step(P, G, M, lr, momentum, weight_decay, nesterov); });
}

auto residual_forward_train(py::object x, py::object shortcut, py::object gamma, py::object beta,
                            py::object running_mean, py::object running_var, double eps,
                            double momentum) {
  Args a("residual_forward_train");
  Tensor X = bn_input(a, x, "x");
  Tensor S = a.optional(shortcut, "shortcut");  // None: relu(batchnorm(x))
  if (S.defined()) a.expect_shape(S, "shortcut", X.shape());
  int64_t C = X.size(1);
  Tensor G = channel_vec(a, gamma, "gamma", C), B = channel_vec(a, beta, "beta", C);
  Tensor RM = channel_vec(a, running_mean, "running_mean", C, true);
  Tensor RV = channel_vec(a, running_var, "running_var", C, true);
  check_eps_momentum(a, eps, momentum);
  check_train_count(a, X);
  Tensor Y = a.out(X.shape()), M = a.out({C}), IS = a.out({C});
  run([&] { ops::residual_forward_train(Y, M, IS, RM, RV, X, S, G, B, eps, momentum); });
  return py::make_tuple(Y, M, IS);
}

auto residual_forward_eval(py::object x, py::object shortcut, py::object gamma, py::object beta,
                           py::object running_mean, py::object running_var, double eps) {
  Args a("residual_forward_eval");
  Tensor X = bn_input(a, x, "x");
  Tensor S = a.optional(shortcut, "shortcut");  // None: relu(batchnorm(x))
  if (S.defined()) a.expect_shape(S, "shortcut", X.shape());
  int64_t C = X.size(1);
  Tensor G = channel_vec(a, gamma, "gamma", C), B = channel_vec(a, beta, "beta", C);
  Tensor RM = channel_vec(a, running_mean, "running_mean", C);
  Tensor RV = channel_vec(a, running_var, "running_var", C);
  check_eps_momentum(a, eps, 0.0);
  Tensor Y = a.out(X.shape());
  run([&] { ops::residual_forward_eval(Y, X, S, G, B, RM, RV, eps); });
  return Y;
}

auto residual_backward(py::object dy, py::object y, py::object x, py::object gamma,
                       py::object save_mean, py::object save_invstd, py::object dgamma,
                       py::object dbeta, bool compute_dshortcut) {
  Args a("residual_backward");
  Tensor X = bn_input(a, x, "x");
  int64_t C = X.size(1);
  Tensor DY = a.tensor(dy, "dy"), Y = a.tensor(y, "y");
  a.expect_shape(DY, "dy", X.shape());
  a.expect_shape(Y, "y", X.shape());
  Tensor G = channel_vec(a, gamma, "gamma", C);
  Tensor M = channel_vec(a, save_mean, "save_mean", C);
  Tensor IS = channel_vec(a, save_invstd, "save_invstd", C);
  Tensor DG = accumulator(a, dgamma, "dgamma", {C});
  Tensor DB = accumulator(a, dbeta, "dbeta", {C});
  Tensor DX = a.out(X.shape()), DS = compute_dshortcut ? a.out(X.shape()) : Tensor();
  run([&] { ops::residual_backward(DX, DS, DG, DB, DY, Y, X, G, M, IS); });
  return py::make_tuple(DX, opt(DS), DG, DB);
}

// ---- fused TFE head ------------------------------------------------------------------------------
struct HeadShape {
  int64_t N, Di, De, D, O;
};

HeadShape head_inputs(Args& a, const Tensor& zi, const Tensor& ze, const Tensor& w) {
  require_nonempty(a, zi, "zi");
  require_nonempty(a, ze, "ze");
  require_nonempty(a, w, "w");
  a.require(ze.size(0) == zi.size(0), "ze: batch " + std::to_string(ze.size(0)) +
                                          " differs from zi's " + std::to_string(zi.size(0)));
  HeadShape s{zi.size(0), zi.size(1), ze.size(1), zi.size(1) + ze.size(1), w.size(0)};
  a.require(w.size(1) == s.D, "w: expects " + std::to_string(w.size(1)) +
                                  " features but zi ++ ze has " + std::to_string(s.D));
  return s;
}

auto tfe_head_forward_train(py::object zi, py::object ze, py::object gamma, py::object beta,
                            py::object running_mean, py::object running_var, py::object w,
                            py::object b, double eps, double momentum) {
  Args a("tfe_head_forward_train");
  Tensor ZI = a.tensor(zi, "zi", 2), ZE = a.tensor(ze, "ze", 2), W = a.tensor(w, "w", 2);
  HeadShape s = head_inputs(a, ZI, ZE, W);
  a.require(s.N > 1, "training mode needs a batch of more than one");
  Tensor G = channel_vec(a, gamma, "gamma", s.D), B = channel_vec(a, beta, "beta", s.D);
  Tensor RM = channel_vec(a, running_mean, "running_mean", s.D, true);
  Tensor RV = channel_vec(a, running_var, "running_var", s.D, true);
  Tensor BIAS = channel_vec(a, b, "b", s.O);
  check_eps_momentum(a, eps, momentum);
  Tensor LOG = a.out({s.N, s.O}), Z = a.out({s.N, s.D}), M = a.out({s.D}),
         IS = a.out({s.D});
  run([&] {
    ops::tfe_head_forward_train(LOG, Z, M, IS, RM, RV, ZI, ZE, G, B, W, BIAS, eps,
                                momentum);
  });
  return py::make_tuple(LOG, Z, M, IS);
}

auto tfe_head_forward_eval(py::object zi, py::object ze, py::object gamma, py::object beta,
                           py::object running_mean, py::object running_var, py::object w,
                           py::object b, double eps) {
  Args a("tfe_head_forward_eval");
  Tensor ZI = a.tensor(zi, "zi", 2), ZE = a.tensor(ze, "ze", 2), W = a.tensor(w, "w", 2);
  HeadShape s = head_inputs(a, ZI, ZE, W);
  Tensor G = channel_vec(a, gamma, "gamma", s.D), B = channel_vec(a, beta, "beta", s.D);
  Tensor RM = channel_vec(a, running_mean, "running_mean", s.D);
  Tensor RV = channel_vec(a, running_var, "running_var", s.D);
  Tensor BIAS = channel_vec(a, b, "b", s.O);
  check_eps_momentum(a, eps, 0.0);
  Tensor LOG = a.out({s.N, s.O}), Z = a.out({s.N, s.D});
  run([&] { ops::tfe_head_forward_eval(LOG, Z, ZI, ZE, G, B, RM, RV, W, BIAS, eps); });
  return py::make_tuple(LOG, Z);
}

auto tfe_head_backward(py::object dlogits, py::object zi, py::object ze, py::object z_hat,
                       py::object gamma, py::object save_mean, py::object save_invstd, py::object w,
                       py::object dgamma, py::object dbeta, py::object dw, py::object db) {
  Args a("tfe_head_backward");
  Tensor ZI = a.tensor(zi, "zi", 2), ZE = a.tensor(ze, "ze", 2), W = a.tensor(w, "w", 2);
  HeadShape s = head_inputs(a, ZI, ZE, W);
  Tensor DL = a.tensor(dlogits, "dlogits", 2);
  a.expect_shape(DL, "dlogits", {s.N, s.O});
  Tensor Z = a.tensor(z_hat, "z_hat", 2);
  a.expect_shape(Z, "z_hat", {s.N, s.D});
  Tensor G = channel_vec(a, gamma, "gamma", s.D);
  Tensor M = channel_vec(a, save_mean, "save_mean", s.D);
  Tensor IS = channel_vec(a, save_invstd, "save_invstd", s.D);
  Tensor DG = accumulator(a, dgamma, "dgamma", {s.D});
  Tensor DBT = accumulator(a, dbeta, "dbeta", {s.D});
  Tensor DW = accumulator(a, dw, "dw", W.shape());
  Tensor DB = accumulator(a, db, "db", {s.O});
  Tensor DZI = a.out(ZI.shape()), DZE = a.out(ZE.shape());
  run([&] {
    ops::tfe_head_backward(DZI, DZE, DG, DBT, DW, DB, DL, ZI, ZE, Z, G, M, IS, W);
  });
  return py::make_tuple(DZI, DZE, DG, DBT, DW, DB);
}

}  // namespace op_impl

}  // namespace

void bind_ops(py::module_& m) {
  // Every op of the table, under its name, keyword arguments and docstring.
#define TFE_UNPAREN(...) __VA_ARGS__
#define TFE_OP(name, kernel_params, tensor_params, device_tensor, kernel_args, python_args, \
               doc)                                                                          \
  m.def(#name, &op_impl::name, TFE_UNPAREN python_args, doc);
#include "ops/ops.def"

  // The table's op names, for the tests and benchmarks that cover every op.
  m.def("ops", [] {
    std::vector<std::string> names;
#define TFE_OP(name, ...) names.push_back(#name);
#include "ops/ops.def"
    return names;
  }, "The names of the native ops, in the order of csrc/ops/ops.def");

  // Not a kernel: the CPU's dropout hash, for tests of the mask.
  m.def("dropout_uniform",
        [](uint64_t seed, py::array_t<uint64_t, py::array::c_style | py::array::forcecast> index) {
          py::array_t<float> out(index.request().shape);
          const uint64_t* in = index.data();
          float* o = out.mutable_data();
          for (py::ssize_t i = 0; i < index.size(); ++i) o[i] = cpu::dropout_uniform(seed, in[i]);
          return out;
        },
        "seed"_a, "index"_a, "The uniform draw in [0, 1) that decides element `index`'s fate");
}

}  // namespace tfe::binding

// Eval-mode networks (see graph.h) and the model-level validation of a model file.
//
// Loading: the layer list is walked in the order of the networks this library runs (Cursor),
// each layer's hyper-parameters are checked, every tensor it names is read with its exact
// expected shape (derived from the list and the input size), and, as
// load_state_dict(strict=True) does, a missing or an unexpected tensor is an error. Shapes are inferred once for the model's input size and
// every layer is folded, packed and given its buffers (Network::prepare), so forward() only
// does arithmetic: no allocation (after a thread's first call), no packing, no shape logic.
//
// Scratch: forward() takes its activations from a thread_local workspace (one per thread
// running an image; a team splitting one image works in its calling thread's), so concurrent
// calls on one model share nothing mutable. Its zero padding is part of the layout, so it is
// zeroed when it passes to another model, and a workspace larger than kKeepBytes (a large
// input size) is released after the call.
#include "infer/graph.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <utility>

#include "conv/conv_infer.h"
#include "conv/winograd.h"
#include "conv/winograd_internal.h"
#include "infer/layers.h"
#include "infer/preprocess.h"
#include "ops/cpu_kernels.h"

namespace tfe::engine {
namespace {

constexpr int kMaxInput = 512;  // input side limit: bounds the workspace of one image
constexpr int kMaxFeatures = 1 << 30;  // in_features of a linear layer (a flattened map)
// Self-test tolerance, relative to max(1, max |stored logit|): 2^13 float32 ulps. The stored
// logits come from the training forward (BN kept separate, direct convolutions, any CPU's
// micro-kernel or the GPU); this library folds BN, runs Winograd and sums in another order,
// which moves the logits by float32 rounding: a few 1e-7 of their size, so this bound is
// never reached by a correct model on any machine, while wrong weights, another architecture
// or a broken kernel change the logits by O(1).
constexpr double kSelftestTolerance = 1.0 / 1024;
// Per-pixel normalisation (x - mean) / std of 8-bit pixels: a mean outside [0, 255] is no
// mean of pixels, and these std bounds keep every network input within +-2^16 (tfe's
// normaliser floors std at 1).
constexpr double kMinStd = 1.0 / 256;
constexpr double kMaxStd = 256;
constexpr size_t kKeepBytes = size_t{64} << 20;

using Floats = std::vector<float>;
using Shape = std::vector<int64_t>;

// Reads tensors by name and remembers which ones were used (for the strictness check).
class Reader {
 public:
  explicit Reader(const ModelFile& f) : f_(f) {}
  Floats get(const std::string& key, const Shape& shape) {
    used_.insert(key);
    return f_.floats(key, shape);
  }
  const ModelFile& file() const { return f_; }
  void check_all_used() const {
    for (const auto& [k, e] : f_.tensors())
      if (!used_.count(k))
        fail(TFE_ERR_FORMAT, f_.name() + ": unexpected tensor '" + printable(k) + "' (shape " +
                                 shape_string(e.shape) + ") for this architecture");
  }

 private:
  const ModelFile& f_;
  std::set<std::string> used_;
};

// ---- reading the layer list --------------------------------------------------------------
// The library runs three shapes of layer list (those tfe.layers.describe writes for DeepID,
// ResNet and TFE), with the widths, kernels, strides, eps and tensor names each list gives;
// the Cursor walks a list in that expected order and refuses anything else in one line.
constexpr const char* kRuns = " (this library runs DeepID, ResNet and TFE layer lists)";

// Layer i's `key`, which must equal `have`, the width of `source` (its input).
int input_width(const Layers& L, int i, const char* key, int64_t have, const std::string& source) {
  const int v = L.integer(i, key, 1, kMaxFeatures);
  if (v != have)
    L.fail(i, TFE_ERR_FORMAT, std::string("\"") + key + "\" is " + std::to_string(v) +
                                  " where " + source + " has " + std::to_string(have));
  return v;
}

void require(const Layers& L, int i, bool ok, const char* what) {
  if (!ok) L.fail(i, TFE_ERR_UNSUPPORTED, std::string("this library runs ") + what + " here");
}

struct Cursor {
  const Layers& L;
  int pos = 0;

  // The index of the next layer, which must be a `kind` reading `from` (and `from2`).
  int next(const char* kind, int from, int from2 = -2) {
    std::string want = std::string("a \"") + kind + "\" layer reading " + layer_ref(from);
    if (from2 != -2) want += " and " + layer_ref(from2);
    if (pos >= L.size())
      fail(TFE_ERR_UNSUPPORTED, L.file() + ": layers: the list ends where " + want +
                                    " is expected" + kRuns);
    const std::vector<int>& in = L.inputs(pos);
    const bool same = L.kind(pos) == kind && in[0] == from &&
                      (from2 == -2 ? in.size() == 1 : in.size() == 2 && in[1] == from2);
    if (!same) L.fail(pos, TFE_ERR_UNSUPPORTED, "expected " + want + kRuns);
    return pos++;
  }
  bool at(const char* kind) const { return pos < L.size() && L.kind(pos) == kind; }
};

// ---- layers ----------------------------------------------------------------------------
struct Conv {
  int C = 0, K = 0, k = 0, stride = 1, pad = 0;
  Floats w, b;  // b empty: no bias
  void read(Reader& r, const std::string& p, int c, int kk, int ks, int s, int pd, bool bias) {
    C = c, K = kk, k = ks, stride = s, pad = pd;
    w = r.get(p + ".weight", {K, C, k, k});
    if (bias) b = r.get(p + ".bias", {K});
  }
  // A "conv2d" layer reading a map of c_in channels.
  void load(Reader& r, const Layers& L, int i, int c_in) {
    const int c = input_width(L, i, "in_channels", c_in, layer_ref(L.input(i)));
    const int kk = L.integer(i, "out_channels", 1, kMaxChannels);
    const int ks = L.integer(i, "kernel", 1, kMaxKernel);
    const int s = L.integer(i, "stride", 1, kMaxStride);
    const int pd = L.integer(i, "padding", 0, kMaxPadding);
    const bool bias = L.flag(i, "bias");
    read(r, L.name(i), c, kk, ks, s, pd, bias);
  }
  int out(int h) const { return (h + 2 * pad - k) / stride + 1; }
  bool fits(int h) const { return h + 2 * pad >= k; }
};

struct BN {
  int C = 0;
  float eps = 0.0f;
  Floats g, b, m, v;
  void read(Reader& r, const std::string& p, int c, float e) {
    C = c, eps = e;
    g = r.get(p + ".weight", {C});
    b = r.get(p + ".bias", {C});
    m = r.get(p + ".running_mean", {C});
    v = r.get(p + ".running_var", {C});
  }
  // A "batchnorm" layer over c channels.
  void load(Reader& r, const Layers& L, int i, int c) {
    input_width(L, i, "channels", c, layer_ref(L.input(i)));
    const float e = L.eps(i);
    read(r, L.name(i), c, e);
  }
};

struct Linear {
  int I = 0, O = 0;
  Floats w, b;
  // A "linear" layer over `in` features.
  void load(Reader& r, const Layers& L, int i, int64_t in) {
    I = input_width(L, i, "in_features", in, layer_ref(L.input(i)));
    O = L.integer(i, "out_features", 1, kMaxClasses);
    require(L, i, L.flag(i, "bias"), "linear layers with a bias");
    const std::string p = L.name(i);
    w = r.get(p + ".weight", {O, I});
    b = r.get(p + ".bias", {O});
  }
};

// ---- folded, pre-packed convolutions -------------------------------------------------------
// The workspace of one image is one float array holding named buffers (Layout). Every buffer
// has ONE fixed layout, whose padding and slack are zeroed when the workspace is created and
// never written afterwards (writers store valid positions only), so a convolution can read
// its input's zero border directly.
struct Layout {
  std::vector<int64_t> size, at;
  int64_t total = 0;
  int add(int64_t n) {
    size.push_back(n);
    return static_cast<int>(size.size()) - 1;
  }
  void need(int id, int64_t n) { size[id] = std::max(size[id], n); }
  void finish() {  // 64-byte aligned offsets
    at.resize(size.size());
    total = 0;
    for (size_t i = 0; i < size.size(); ++i) {
      at[i] = total;
      total += (size[i] + 15) / 16 * 16;
    }
  }
};

// A zero-padded activation map: channel c, row r, column q (0-based, unpadded) at
// c * plane + (r + 1) * row + (q + 1), row = side + 1 (the right padding of a row is the
// left padding of the next one), plane = (side + 1)^2 (the bottom padding of a channel is the
// top padding of the next one; after the last channel, the buffer's zeroed slack).
struct Padded {
  int id = -1, C = 0, side = 0;
  int64_t row() const { return side + 1; }
  int64_t plane() const { return row() * row(); }
  int64_t base() const { return row() + 1; }
};

Padded padded(Layout& L, int C, int side) {
  Padded p;
  p.C = C, p.side = side;
  p.id = L.add(C * p.plane());
  return p;
}

// One convolution with its batch norm folded in and its weights packed for the GEMM's
// micro-kernel, reading buffer `in` (from in_base, through the tap offsets `off`) and writing
// buffer `out` through the mapping of cpu::conv_infer_run.
struct Plan {
  int K = 0, T = 0, Ho = 0, Wo = 0, ldx = 0, items = 0;
  std::vector<int> off;
  Floats wp, bias;
  int in = -1, out = -1, res = -1;  // buffer ids (res: residual, laid out like out)
  int64_t in_base = 0, y_plane = 0, y_base = 0;
  int y_row = 0;
  bool relu = false;
  // Winograd F(2x2, 3x3) (3x3 stride-1 pad-1 layers, see conv_same): wp holds the
  // transformed weights, `in` is read from its padded origin with these strides.
  bool wino = false;
  int C = 0, x_row = 0;
  int64_t x_plane = 0;

  // Winograd only: all tiles, output channels [k0, k1).
  void run_channels(float* ws, const Layout& L, int k0, int k1) const {
    cpu::detail::winograd_run_channels(ws + L.at[out], ws + L.at[in], x_plane, x_row, wp.data(),
                                       bias.data(), res >= 0 ? ws + L.at[res] : nullptr, K, C,
                                       Ho, y_plane, y_base, y_row, relu, 0, items, k0, k1);
  }

  void run(float* ws, const Layout& L, int a, int b) const {
    if (wino) {
      cpu::winograd_run(ws + L.at[out], ws + L.at[in], x_plane, x_row, wp.data(), bias.data(),
                        res >= 0 ? ws + L.at[res] : nullptr, K, C, Ho, y_plane, y_base, y_row,
                        relu, a, b);
      return;
    }
    cpu::conv_infer_run(ws + L.at[out], ws + L.at[in] + in_base, wp.data(), bias.data(),
                        res >= 0 ? ws + L.at[res] : nullptr, off.data(), K, T, Ho, Wo, ldx,
                        y_plane, y_base, y_row, relu, a, b);
  }
};

// w' = w * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps), in double: the
// eval-mode conv -> BN becomes one conv with a bias. (Exact in real arithmetic; in float the
// logits move by a few ulps of their size, far inside the self-test tolerance.)
void fold(const Conv& c, const BN* bn, Floats* w, Floats* b) {
  const int64_t per = int64_t{c.C} * c.k * c.k;
  w->resize(c.w.size());
  b->assign(c.K, 0.0f);
  for (int o = 0; o < c.K; ++o) {
    double s = 1.0, shift = c.b.empty() ? 0.0 : c.b[o];
    if (bn) {
      s = bn->g[o] / std::sqrt(static_cast<double>(bn->v[o]) + bn->eps);
      shift = (shift - bn->m[o]) * s + bn->b[o];
    }
    for (int64_t t = 0; t < per; ++t)
      (*w)[o * per + t] = static_cast<float>(c.w[o * per + t] * s);
    (*b)[o] = static_cast<float>(shift);
  }
}

void pack(Plan& p, const Conv& c, const BN* bn) {
  Floats w;
  fold(c, bn, &w, &p.bias);
  p.K = c.K;
  p.T = static_cast<int>(p.off.size());
  p.wp.assign(cpu::conv_infer_packed_size(p.K, p.T), 0.0f);
  cpu::conv_infer_pack(p.wp.data(), w.data(), p.K, p.T);
  p.items = cpu::conv_infer_items(p.K, p.Ho, p.ldx);
}

int64_t max_off(const Plan& p) { return *std::max_element(p.off.begin(), p.off.end()); }

// Output into a padded map.
void to_padded(Plan& p, const Padded& y) {
  p.out = y.id, p.y_plane = y.plane(), p.y_base = y.base(), p.y_row = static_cast<int>(y.row());
}
// Output into a dense [K][Ho][Wo] buffer.
void to_dense(Plan& p, int id) {
  p.out = id, p.y_plane = int64_t{p.Ho} * p.Wo, p.y_base = 0, p.y_row = p.Wo;
}

// Stride-1, no-padding k x k taps over C channels of a map with row stride `row` and channel
// stride `plane` (a padded map read from its first data pixel, or a dense one).
void taps_valid(Plan& p, int C, int k, int64_t row, int64_t plane) {
  p.off.clear();
  for (int c = 0; c < C; ++c)
    for (int kh = 0; kh < k; ++kh)
      for (int kw = 0; kw < k; ++kw) p.off.push_back(static_cast<int>(c * plane + kh * row + kw));
}

// Winograd F(2x2, 3x3) for the 3x3 stride-1 layers with at least this many input channels.
// Below it (the stems, C = 1) the GEMM depth is too small to pay for the transforms and the
// direct convolution is faster. TFE_CONV_WINOGRAD=0 in the environment (read at load) keeps
// every layer on the direct convolution, for comparison.
constexpr int kWinogradMinC = 8;

bool winograd_enabled() {
  const char* e = std::getenv("TFE_CONV_WINOGRAD");
  return !(e && std::strcmp(e, "0") == 0);
}

// Plan reading a padded map as a 3x3 stride-1 pad-1 convolution (taps over the border).
Plan conv_same(Layout& L, const Conv& c, const BN* bn, const Padded& x) {
  Plan p;
  p.in = x.id, p.Ho = p.Wo = x.side, p.ldx = static_cast<int>(x.row());
  if (c.C >= kWinogradMinC && winograd_enabled()) {
    Floats w;
    fold(c, bn, &w, &p.bias);
    p.wino = true;
    p.K = c.K, p.C = c.C, p.T = 9;
    p.x_row = static_cast<int>(x.row()), p.x_plane = x.plane();
    p.wp.assign(cpu::winograd_packed_size(p.K, p.C), 0.0f);
    cpu::winograd_pack(p.wp.data(), w.data(), p.K, p.C);
    p.items = cpu::winograd_items(x.side);
    // Read up to padded pixel (side + 1, side + 1) of the last channel (the bottom border is
    // the next plane's top row: here the buffer's zeroed slack).
    L.need(x.id, int64_t{c.C} * x.plane() + x.row() + 1);
    return p;
  }
  taps_valid(p, c.C, 3, x.row(), x.plane());
  pack(p, c, bn);
  L.need(x.id, max_off(p) + cpu::conv_infer_span(p.Ho, p.ldx));
  return p;
}

// Phase split of a padded map for its stride-2 convolutions (the 3x3 pad-1 one and the 1x1
// pad-0 projection): phase (ph, pw) of channel c holds padded pixel (2i + ph, 2j + pw), padded
// coordinates (0 = the top/left border), i, j < Hq, so every tap of a stride-2 output pixel is
// a pure shift inside one phase plane.
struct Phases {
  int id = -1, C = 0, side = 0, Hq = 0;
  int64_t plane() const { return int64_t{Hq} * Hq; }
  int64_t at(int c, int ph, int pw) const { return ((int64_t{c} * 2 + ph) * 2 + pw) * plane(); }
  // Rows are split over the team: (channel, phase, row) triples. Only pixels of the image
  // are written: the phase planes' border and slack stay zero from the workspace's creation.
  int rows() const { return C * 4 * Hq; }
  void fill(float* ws, const Layout& L, const Padded& src, int q0, int q1) const {
    const float* s = ws + L.at[src.id];
    float* d = ws + L.at[id];
    for (int64_t q = q0; q < q1; ++q) {
      const int i = static_cast<int>(q % Hq);
      const int64_t cp = q / Hq;
      const int c = static_cast<int>(cp / 4), ph = static_cast<int>(cp / 2 % 2),
                pw = static_cast<int>(cp % 2);
      const int r = 2 * i + ph;  // padded row
      if (r < 1 || r > side) continue;
      float* out = d + at(c, ph, pw) + int64_t{i} * Hq;
      const float* in = s + c * src.plane() + r * src.row() + pw;
      const int j0 = pw == 0 ? 1 : 0, j1 = (side - pw) / 2;  // padded column 2j+pw in 1..side
      for (int j = j0; j <= j1; ++j) out[j] = in[2 * j];
    }
  }
};

Phases phases(Layout& L, const Padded& x) {
  Phases f;
  f.C = x.C, f.side = x.side, f.Hq = (x.side + 2 + 1) / 2;
  f.id = L.add(int64_t{f.C} * 4 * f.plane());
  return f;
}

Plan conv_s2(Layout& L, const Conv& c, const BN* bn, const Phases& x, int ho) {
  Plan p;
  p.in = x.id, p.Ho = p.Wo = ho, p.ldx = x.Hq;
  for (int ch = 0; ch < c.C; ++ch)
    for (int kh = 0; kh < 3; ++kh)
      for (int kw = 0; kw < 3; ++kw)
        p.off.push_back(static_cast<int>(x.at(ch, kh % 2, kw % 2) + (kh / 2) * x.Hq + kw / 2));
  pack(p, c, bn);
  L.need(x.id, max_off(p) + cpu::conv_infer_span(p.Ho, p.ldx));
  return p;
}

Plan proj_s2(Layout& L, const Conv& c, const BN* bn, const Phases& x, int ho) {
  Plan p;
  p.in = x.id, p.Ho = p.Wo = ho, p.ldx = x.Hq;
  for (int ch = 0; ch < c.C; ++ch) p.off.push_back(static_cast<int>(x.at(ch, 1, 1)));
  pack(p, c, bn);
  L.need(x.id, max_off(p) + cpu::conv_infer_span(p.Ho, p.ldx));
  return p;
}

// The layers of one image run in order; each is a step over independent work items (output
// tiles, rows, channels). With one thread a step is one call. With a team (one OpenMP
// parallel region around the whole image, see Model::forward) every thread takes a fixed,
// contiguous share of each step and the team meets at a barrier before the next one: one
// fork for the image rather than one per layer (a fork/join per layer cost more than the
// second core gained). A share is a range of work items, or, for a Winograd layer with fewer
// than two 48-tile panels per thread, a range of 8-channel output blocks: either way each
// output element is summed by one thread in the same order, so the result is bit-identical
// for any team size.
struct Team {
  int tid = 0, nt = 1;

  // This thread's share [a, b) of `items`, in whole chunks.
  std::pair<int, int> share(int items, int chunk) const {
    const int units = (items + chunk - 1) / chunk;
    return {std::min(items, units * tid / nt * chunk),
            std::min(items, units * (tid + 1) / nt * chunk)};
  }
  void sync() const {
    if (nt > 1) {
#pragma omp barrier
    }
  }
  // fn(a, b) on this thread's share of `items`, then the barrier.
  template <class F>
  void step(int items, int chunk, F&& fn) {
    const auto [a, b] = share(items, chunk);
    if (a < b) fn(a, b);
    sync();
  }

  void conv(const Plan& p, float* ws, const Layout& L) {
    if (nt == 1 || !p.wino || p.items >= 2 * nt) {
      step(p.items, 1, [&](int a, int b) { p.run(ws, L, a, b); });
      return;
    }
    // Few panels (at 48x48, the 24x24 and 12x12 stages): split the output channels; every
    // thread transforms the whole input, which is cheap next to the GEMM.
    const auto [k0, k1] = share(p.K, cpu::detail::winograd_channel_block());
    if (k0 < k1) p.run_channels(ws, L, k0, k1);
    sync();
  }
};

// y[o] (+)= b[o] + sum_i x[i] wt[i][o] for o in [o0, o1): weights stored transposed [I][O] so
// the inner loop runs over outputs (vectorisable without reassociating a sum).
struct Dense {
  int I = 0, O = 0;
  Floats wt, b;
  void set(const Floats& w /*[O, I]*/, const Floats& bias, int i, int o) {
    I = i, O = o, b = bias;
    wt.resize(static_cast<size_t>(I) * O);
    for (int r = 0; r < O; ++r)
      for (int c = 0; c < I; ++c) wt[static_cast<size_t>(c) * O + r] = w[static_cast<size_t>(r) * I + c];
  }
  // Rows [i0, i0 + n) of the input, given as x[0..n).
  void accumulate(float* y, const float* x, int i0, int n, int o0, int o1) const {
    for (int i = 0; i < n; ++i) {
      const float xi = x[i];
      const float* w = wt.data() + static_cast<size_t>(i0 + i) * O;
      for (int o = o0; o < o1; ++o) y[o] += xi * w[o];
    }
  }
  void init(float* y, int o0, int o1) const {
    for (int o = o0; o < o1; ++o) y[o] = b[o];
  }
};

// ---- DeepID --------------------------------------------------------------------------------
struct DeepID {
  Conv conv[4];
  Linear fc, classifier;
  int feature = 0;      // the width of fc: the identity feature
  int h[5] = {};        // input side, then after conv1+pool, conv2+pool, conv3+pool, conv4
  int co[4] = {};       // conv output sides
  int64_t concat = 0;   // pool3 ++ conv4 features per image
  // Inference form.
  Plan plan[4];
  int conv_out[4] = {}, pool_out[3] = {};  // dense buffers
  Dense fcd, cls;

  // (conv2d, relu, maxpool2d) x 3, conv2d, relu, flatten(pool3), flatten(conv4), concat,
  // linear, relu (the feature), dropout (the identity in eval mode), linear: the layers from
  // the cursor on, reading `from`. Returns the index of the feature's relu.
  int load(Reader& r, Cursor& cur, int from, int size) {
    const Layers& L = cur.L;
    int x = from, pool3 = -1, relu4 = -1;
    h[0] = size;
    for (int i = 0; i < 4; ++i) {
      const int at = cur.next("conv2d", x);
      conv[i].load(r, L, at, i == 0 ? 1 : conv[i - 1].K);
      require(L, at, conv[i].stride == 1 && conv[i].pad == 0 && !conv[i].b.empty(),
              "DeepID convolutions of stride 1 without padding, with a bias,");
      if (!conv[i].fits(h[i]))
        L.fail(at, TFE_ERR_UNSUPPORTED, "input size " + std::to_string(size) + " is too small");
      co[i] = conv[i].out(h[i]);
      x = cur.next("relu", at);
      if (i == 3) {
        h[4] = co[3], relu4 = x;
        break;
      }
      const int pool = cur.next("maxpool2d", x);
      require(L, pool,
              L.integer(pool, "kernel", 1, kMaxKernel) == 2 &&
                  L.integer(pool, "stride", 1, kMaxStride) == 2,
              "2x2 stride-2 max pooling");
      if (co[i] < 2)
        L.fail(pool, TFE_ERR_UNSUPPORTED, "input size " + std::to_string(size) + " is too small");
      h[i + 1] = co[i] / 2;  // floor
      x = pool3 = pool;
    }
    const int f3 = cur.next("flatten", pool3), f4 = cur.next("flatten", relu4);
    const int cat = cur.next("concat", f3, f4);
    concat = int64_t{conv[2].K} * h[3] * h[3] + int64_t{conv[3].K} * h[4] * h[4];
    const int fc_at = cur.next("linear", cat);
    fc.load(r, L, fc_at, concat);
    feature = fc.O;
    const int feat = cur.next("relu", fc_at);
    const int drop = cur.next("dropout", feat);
    L.dropout_rate(drop);  // unused in eval mode, but must make sense
    classifier.load(r, L, cur.next("linear", drop), feature);
    return feat;
  }

  // conv1 reads the padded input map from its first data pixel (no padding: valid taps).
  void prepare(Layout& L, const Padded& input) {
    for (int i = 0; i < 4; ++i) {
      Plan& p = plan[i];
      p.Ho = p.Wo = co[i];
      const int C = conv[i].C, k = conv[i].k;
      if (i == 0) {
        p.in = input.id, p.in_base = input.base(), p.ldx = static_cast<int>(input.row());
        taps_valid(p, C, k, input.row(), input.plane());
      } else {
        p.in = pool_out[i - 1], p.ldx = h[i];
        taps_valid(p, C, k, h[i], int64_t{h[i]} * h[i]);
      }
      pack(p, conv[i], nullptr);
      p.relu = true;  // relu then max-pool = max-pool then relu
      L.need(p.in, p.in_base + max_off(p) + cpu::conv_infer_span(p.Ho, p.ldx));
      conv_out[i] = L.add(int64_t{conv[i].K} * co[i] * co[i]);
      to_dense(p, conv_out[i]);
      if (i < 3) pool_out[i] = L.add(int64_t{conv[i].K} * h[i + 1] * h[i + 1]);
    }
    fcd.set(fc.w, fc.b, fc.I, fc.O);
    cls.set(classifier.w, classifier.b, classifier.I, classifier.O);
    for (Conv& c : conv) Floats().swap(c.w);
  }

  // 2x2 stride-2 max pool (floor), dense to dense, planes split over the team.
  static void pool(float* y, const float* x, int hi, int ho, int c0, int c1) {
    for (int c = c0; c < c1; ++c) {
      const float* xc = x + int64_t{c} * hi * hi;
      float* yc = y + int64_t{c} * ho * ho;
      for (int i = 0; i < ho; ++i) {
        const float* r0 = xc + int64_t{2 * i} * hi;
        const float* r1 = r0 + hi;
        for (int j = 0; j < ho; ++j) {
          float m = r0[2 * j];
          m = r0[2 * j + 1] > m ? r0[2 * j + 1] : m;
          m = r1[2 * j] > m ? r1[2 * j] : m;
          m = r1[2 * j + 1] > m ? r1[2 * j + 1] : m;
          yc[i * ho + j] = m;
        }
      }
    }
  }

  // feat[160] = relu(fc(pool3 ++ conv4)); the input map must be filled (and synced).
  void features(float* feat, float* ws, const Layout& L, Team& team) const {
    for (int i = 0; i < 4; ++i) {
      const Plan& p = plan[i];
      team.step(p.items, 1, [&](int a, int b) { p.run(ws, L, a, b); });
      if (i < 3) {
        const float* x = ws + L.at[conv_out[i]];
        float* y = ws + L.at[pool_out[i]];
        team.step(conv[i].K, 4, [&](int a, int b) { pool(y, x, co[i], h[i + 1], a, b); });
      }
    }
    const int n3 = conv[2].K * h[3] * h[3];
    team.step(feature, 16, [&](int o0, int o1) {
      fcd.init(feat, o0, o1);
      fcd.accumulate(feat, ws + L.at[pool_out[2]], 0, n3, o0, o1);
      fcd.accumulate(feat, ws + L.at[conv_out[3]], n3, conv[3].K * h[4] * h[4], o0, o1);
      for (int o = o0; o < o1; ++o) feat[o] = feat[o] < 0.0f ? 0.0f : feat[o];
    });
  }
};

// ---- ResNet ------------------------------------------------------------------------------
struct Block {
  Conv conv1, conv2, proj;
  BN bn1, bn2, proj_bn;
  bool projection = false;
  int h_in = 0, h_out = 0;
  // Inference form: in -> [phases] -> mid = relu(conv1'), sc = proj'; out = relu(conv2' + sc).
  Plan p1, p2, pp;
  Phases ph;
  Padded in, mid, sc, out;

  // A "residual_block" layer over a map of c channels and side h: tfe.nn's IdentityBlock
  // (stride 1, same width) or ProjectionBlock (stride 2, 1x1 stride-2 shortcut).
  void load(Reader& r, const Layers& L, int i, int c, int h) {
    const int cin = input_width(L, i, "in_channels", c, layer_ref(L.input(i)));
    const int K = L.integer(i, "out_channels", 1, kMaxChannels);
    const int k = L.integer(i, "kernel", 1, kMaxKernel);
    const int s = L.integer(i, "stride", 1, kMaxStride);
    const int pd = L.integer(i, "padding", 0, kMaxPadding);
    const std::string shortcut = L.text(i, "shortcut");
    const float eps = L.eps(i);
    projection = shortcut == "projection";
    require(L, i,
            k == 3 && pd == 1 &&
                ((shortcut == "identity" && s == 1 && K == cin) || (projection && s == 2)),
            "residual blocks of 3x3 padding-1 convolutions with an \"identity\" shortcut "
            "(stride 1, one width) or a \"projection\" shortcut (stride 2)");
    const std::string q = L.name(i) + ".";
    conv1.read(r, q + "conv1", cin, K, 3, s, 1, false);
    bn1.read(r, q + "bn1", K, eps);
    conv2.read(r, q + "conv2", K, K, 3, 1, 1, false);
    bn2.read(r, q + "bn2", K, eps);
    if (projection) {
      proj.read(r, q + "proj", cin, K, 1, 2, 0, false);
      proj_bn.read(r, q + "proj_bn", K, eps);
    }
    h_in = h;
    h_out = conv1.out(h);
  }
};

struct ResNet {
  Conv stem;
  BN stem_bn;
  std::vector<Block> blocks;
  Linear fc;
  int feature = 0, size = 0, h_last = 0;
  // Inference form.
  Plan stem_plan;
  Padded last;
  Dense fcd;

  // conv2d, batchnorm, relu (the stem), residual_block..., global_avg_pool (the feature),
  // linear: the layers from the cursor on, reading `from`. Returns the index of the pool.
  int load(Reader& r, Cursor& cur, int from, int sz) {
    const Layers& L = cur.L;
    size = sz;
    const int at = cur.next("conv2d", from);
    stem.load(r, L, at, 1);
    require(L, at, stem.k == 3 && stem.stride == 1 && stem.pad == 1 && stem.b.empty(),
            "ResNet stems of a 3x3 stride-1 padding-1 convolution without bias");
    const int bn = cur.next("batchnorm", at);
    stem_bn.load(r, L, bn, stem.K);
    int x = cur.next("relu", bn), c = stem.K, h = sz;
    while (cur.at("residual_block")) {
      Block b;
      x = cur.next("residual_block", x);
      b.load(r, L, x, c, h);
      h = b.h_out;
      c = b.conv1.K;
      blocks.push_back(std::move(b));
    }
    feature = c;
    h_last = h;
    const int pool = cur.next("global_avg_pool", x);
    fc.load(r, L, cur.next("linear", pool), feature);
    return pool;
  }

  // Identity blocks update their map in place (out = relu(conv2'(mid) + in) element by
  // element): one map per stage plus the block's middle map.
  void prepare(Layout& L, const Padded& input) {
    Padded cur = padded(L, stem.K, size);
    stem_plan = conv_same(L, stem, &stem_bn, input);
    stem_plan.relu = true;
    to_padded(stem_plan, cur);
    for (Block& b : blocks) {
      b.in = cur;
      const int K = b.conv1.K;
      b.mid = padded(L, K, b.h_out);
      if (b.projection) {
        b.ph = phases(L, cur);
        b.out = padded(L, K, b.h_out);
        b.sc = padded(L, K, b.h_out);
        b.p1 = conv_s2(L, b.conv1, &b.bn1, b.ph, b.h_out);
        b.pp = proj_s2(L, b.proj, &b.proj_bn, b.ph, b.h_out);
        to_padded(b.pp, b.sc);
      } else {
        b.out = cur;
        b.sc = cur;
        b.p1 = conv_same(L, b.conv1, &b.bn1, cur);
      }
      b.p1.relu = true;
      to_padded(b.p1, b.mid);
      b.p2 = conv_same(L, b.conv2, &b.bn2, b.mid);
      b.p2.relu = true;
      b.p2.res = b.sc.id;
      to_padded(b.p2, b.out);
      cur = b.out;
      Floats().swap(b.conv1.w), Floats().swap(b.conv2.w), Floats().swap(b.proj.w);
    }
    last = cur;
    fcd.set(fc.w, fc.b, fc.I, fc.O);
    Floats().swap(stem.w);
  }

  // feat[feature] = global average pool of the last stage; the input map must be filled.
  void features(float* feat, float* ws, const Layout& L, Team& team) const {
    auto conv = [&](const Plan& p) { team.conv(p, ws, L); };
    conv(stem_plan);
    for (const Block& b : blocks) {
      if (b.projection) {
        team.step(b.ph.rows(), 16, [&](int a, int c) { b.ph.fill(ws, L, b.in, a, c); });
        // The projection and conv1 read the same phases: one step for both, each split
        // on its own (conv1 has 9 times the projection's work per item).
        const auto [a1, c1] = team.share(b.p1.items, 1);
        const auto [ap, cp] = team.share(b.pp.items, 1);
        if (a1 < c1) b.p1.run(ws, L, a1, c1);
        if (ap < cp) b.pp.run(ws, L, ap, cp);
        team.sync();
      } else {
        conv(b.p1);
      }
      conv(b.p2);
    }
    const float* x = ws + L.at[last.id];
    const double inv = 1.0 / (static_cast<double>(h_last) * h_last);
    team.step(feature, 8, [&](int c0, int c1) { gap(feat, x, inv, c0, c1); });
  }

  void gap(float* feat, const float* x, double inv, int c0, int c1) const {
    for (int c = c0; c < c1; ++c) {
      double s = 0.0;
      for (int r = 0; r < h_last; ++r) {
        const float* row = x + c * last.plane() + (r + 1) * last.row() + 1;
        for (int q = 0; q < h_last; ++q) s += row[q];
      }
      feat[c] = static_cast<float>(s * inv);
    }
  }
};

}  // namespace

// ---- the network ---------------------------------------------------------------------------
class Network {
 public:
  enum class Kind { deepid, resnet, tfe } kind = Kind::resnet;
  DeepID id;
  ResNet em;
  // TFE head (BN1d over zi ++ ze, then FC), loaded raw, then folded into one Dense.
  Floats hg, hb, hm, hv, hw, hbias;
  float heps = 0.0f;
  Dense head;
  int classes = 0, size = 0;
  Layout L;
  Padded input;
  int zi = -1, ze = -1;  // feature buffers
  uint64_t serial = 0;   // identifies this network's workspace layout

  // Folds and packs every layer, lays out the workspace of one image.
  void prepare() {
    static std::atomic<uint64_t> counter{0};
    serial = ++counter;
    input = padded(L, 1, size);
    if (kind != Kind::resnet) {
      id.prepare(L, input);
      zi = L.add(id.feature);
    }
    if (kind != Kind::deepid) {
      em.prepare(L, input);
      ze = L.add(em.feature);
    }
    if (kind == Kind::tfe) {
      // logits = W (z * s + t) + b = (W s) z + (W t + b), s = gamma / sqrt(var + eps),
      // t = beta - mean * s: the eval-mode BN1d folded into the FC (in double).
      const int d = id.feature + em.feature;
      Floats w(hw.size()), b(classes);
      for (int o = 0; o < classes; ++o) {
        double acc = hbias[o];
        for (int i = 0; i < d; ++i) {
          const double s = hg[i] / std::sqrt(static_cast<double>(hv[i]) + heps);
          const double t = hb[i] - hm[i] * s;
          w[static_cast<size_t>(o) * d + i] = static_cast<float>(hw[static_cast<size_t>(o) * d + i] * s);
          acc += static_cast<double>(hw[static_cast<size_t>(o) * d + i]) * t;
        }
        b[o] = static_cast<float>(acc);
      }
      head.set(w, b, d, classes);
    }
    L.finish();
  }

  // One normalised image x[S*S] -> logits[classes], by the threads of `team`.
  void run(const float* x, float* logits, float* ws, Team& team) const {
    float* d = ws + L.at[input.id];
    team.step(size, 8, [&](int r0, int r1) {  // the input into its padded map
      for (int r = r0; r < r1; ++r)
        std::copy(x + int64_t{r} * size, x + int64_t{r + 1} * size,
                  d + (r + 1) * input.row() + 1);
    });
    if (kind != Kind::resnet) id.features(ws + L.at[zi], ws, L, team);
    if (kind != Kind::deepid) em.features(ws + L.at[ze], ws, L, team);
    team.step(1, 1, [&](int, int) { classify(logits, ws); });
  }

  void classify(float* logits, const float* ws) const {
    switch (kind) {
      case Kind::deepid:  // dropout is the identity in eval mode
        id.cls.init(logits, 0, classes);
        id.cls.accumulate(logits, ws + L.at[zi], 0, id.feature, 0, classes);
        break;
      case Kind::resnet:
        em.fcd.init(logits, 0, classes);
        em.fcd.accumulate(logits, ws + L.at[ze], 0, em.feature, 0, classes);
        break;
      case Kind::tfe:
        head.init(logits, 0, classes);
        head.accumulate(logits, ws + L.at[zi], 0, id.feature, 0, classes);
        head.accumulate(logits, ws + L.at[ze], id.feature, em.feature, 0, classes);
        break;
    }
  }
};

namespace {

// One image's workspace per thread (grow-only, 64-byte aligned). Its padding must be zero
// for the network that uses it, so it is zeroed whenever it changes hands between networks
// (networks are told apart by a serial number, not by address, which could be reused).
struct Workspace {
  float* p = nullptr;
  int64_t cap = 0;
  uint64_t owner = 0;
  ~Workspace() { std::free(p); }
  float* get(const Network& net) {
    if (net.L.total > cap) {
      std::free(p);
      p = nullptr, cap = 0, owner = 0;
      const size_t bytes = (static_cast<size_t>(net.L.total) * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      cap = static_cast<int64_t>(bytes / sizeof(float));
    }
    if (owner != net.serial) {
      std::memset(p, 0, sizeof(float) * cap);
      owner = net.serial;
    }
    return p;
  }
  // A workspace for a large input (up to kMaxInput) is not kept after the call.
  void trim() {
    if (cap * static_cast<int64_t>(sizeof(float)) > static_cast<int64_t>(kKeepBytes)) {
      std::free(p);
      p = nullptr, cap = 0, owner = 0;
    }
  }
};
thread_local Workspace tls_workspace;

// A "tfe_head" layer: BN1d over identity ++ emotion features (the layers it reads), then FC.
void load_head(Network& net, Reader& r, const Layers& L, int i) {
  const std::vector<int>& in = L.inputs(i);
  input_width(L, i, "identity_dim", net.id.feature, layer_ref(in[0]));
  input_width(L, i, "emotion_dim", net.em.feature, layer_ref(in[1]));
  net.classes = L.integer(i, "num_classes", 1, kMaxClasses);
  net.heps = L.eps(i);
  const std::string p = L.name(i);
  const int d = net.id.feature + net.em.feature;
  net.hg = r.get(p + ".bn_weight", {d});
  net.hb = r.get(p + ".bn_bias", {d});
  net.hm = r.get(p + ".running_mean", {d});
  net.hv = r.get(p + ".running_var", {d});
  net.hw = r.get(p + ".weight", {net.classes, d});
  net.hbias = r.get(p + ".bias", {net.classes});
}

// The network a checked layer list describes: a TFE list ends with its head; a ResNet list
// has a batch norm after its first layer; anything else must be a DeepID list.
void load_network(Network& net, Reader& r, const Layers& L, int size) {
  Cursor cur{L};
  net.size = size;
  if (L.kind(L.size() - 1) == "tfe_head") {
    net.kind = Network::Kind::tfe;
    const int zi = net.id.load(r, cur, -1, size);
    const int ze = net.em.load(r, cur, -1, size);
    load_head(net, r, L, cur.next("tfe_head", zi, ze));
  } else if (L.size() > 1 && L.kind(1) == "batchnorm") {
    net.kind = Network::Kind::resnet;
    net.em.load(r, cur, -1, size);
    net.classes = net.em.fc.O;
  } else {
    net.kind = Network::Kind::deepid;
    net.id.load(r, cur, -1, size);
    net.classes = net.id.classifier.O;
  }
  if (cur.pos < L.size())
    L.fail(cur.pos, TFE_ERR_UNSUPPORTED, std::string("follows the network's output") + kRuns);
}

std::string g3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

const Json& meta_json(const ModelFile& f, const char* key, Json* storage) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end())
    fail(TFE_ERR_FORMAT, f.name() + ": missing metadata \"" + key + "\"");
  *storage = Json::parse(it->second.data(), it->second.size(), f.name() + ": metadata " + key);
  return *storage;
}

}  // namespace

std::string selftest_failure(float diff, float tolerance) {
  return "self-test failed: max |logit difference| " + g3(diff) + " exceeds the tolerance " +
         g3(tolerance) + " (the weights do not compute the file's stored logits)";
}

Model::Model() = default;
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const ModelFile& file) {
  std::unique_ptr<Model> m(new Model());
  const std::string& fn = file.name();
  Reader r(file);

  // Preprocessing contract.
  Json pre_storage;
  const Json& pre = meta_json(file, "preprocessing", &pre_storage);
  if (!pre.is_object()) fail(TFE_ERR_FORMAT, fn + ": preprocessing is not a JSON object");
  const Json* isz = pre.find("input_size");
  if (!isz || !isz->is_array() || isz->items().size() != 2 || !isz->items()[0].is_integer() ||
      !isz->items()[1].is_integer() || isz->items()[0].integer() < 1 ||
      isz->items()[1].integer() < 1)
    fail(TFE_ERR_FORMAT, fn + ": preprocessing.input_size is not [height, width]");
  const int64_t ih = isz->items()[0].integer(), iw = isz->items()[1].integer();
  if (ih != iw || ih > kMaxInput)
    fail(TFE_ERR_UNSUPPORTED, fn + ": input size " + std::to_string(ih) + "x" +
                                  std::to_string(iw) + " (this library runs square inputs up to " +
                                  std::to_string(kMaxInput) + ")");
  m->size_ = static_cast<int>(ih);
  m->name_ = fn;
  const Json* gray = pre.find("grayscale");
  if (gray && !(gray->is_bool() && gray->boolean()))
    fail(TFE_ERR_UNSUPPORTED, fn + ": preprocessing.grayscale is not true");
  const Json* labels = pre.find("labels");
  if (!labels || !labels->is_array())
    fail(TFE_ERR_FORMAT, fn + ": preprocessing.labels is not a list");
  for (const Json& l : labels->items()) {
    if (!l.is_string()) fail(TFE_ERR_FORMAT, fn + ": preprocessing.labels holds a non-string");
    m->classes_.push_back(l.str());
  }

  const int s = m->size_;
  m->mean_ = r.get("preprocess.mean", {s, s});
  Floats std_dev = r.get("preprocess.std", {s, s});
  m->inv_std_.resize(std_dev.size());
  for (size_t i = 0; i < std_dev.size(); ++i) {
    if (!(std_dev[i] >= kMinStd && std_dev[i] <= kMaxStd))
      fail(TFE_ERR_FORMAT, fn + ": preprocess.std must lie in [" + g3(kMinStd) + ", " +
                               g3(kMaxStd) + "] (it scales 8-bit pixels)");
    if (!(m->mean_[i] >= 0.0f && m->mean_[i] <= 255.0f))
      fail(TFE_ERR_FORMAT, fn + ": preprocess.mean must lie in [0, 255] (a mean of 8-bit pixels)");
    m->inv_std_[i] = static_cast<float>(1.0 / static_cast<double>(std_dev[i]));
  }

  // Network: from the file's layer list, or, in a file written before it was stored, from
  // the list its architecture describes.
  Json arch_storage, layers_storage;
  const Json& arch = meta_json(file, "architecture", &arch_storage);
  m->arch_name_ = architecture_name(arch, fn);
  if (file.metadata().count("layers") || file.metadata().at("format") != "tfe-1") {
    meta_json(file, "layers", &layers_storage);
  } else {
    const std::string text = layers_from_architecture(arch, s, fn);
    layers_storage = Json::parse(text.data(), text.size(), fn + ": layers");
  }
  const Layers layers(layers_storage, fn);
  m->net_ = std::make_unique<Network>();
  load_network(*m->net_, r, layers, s);
  if (m->net_->classes != m->num_classes())
    fail(TFE_ERR_FORMAT, fn + ": " + std::to_string(m->classes_.size()) +
                             " labels for a network with " + std::to_string(m->net_->classes) +
                             " outputs");

  // Self-test.
  m->selftest_input_ = r.get("selftest.input", {1, 1, s, s});
  m->selftest_logits_ = r.get("selftest.logits", {1, m->net_->classes});
  double scale = 1.0;
  for (float z : m->selftest_logits_) scale = std::max(scale, std::fabs(static_cast<double>(z)));
  m->selftest_atol_ = static_cast<float>(kSelftestTolerance * scale);
  r.check_all_used();
  m->net_->prepare();

  // A file whose weights do not compute its own stored logits never predicts.
  const float d = m->selftest_diff();
  if (!(d <= m->selftest_atol_))
    fail(TFE_ERR_SELFTEST, fn + ": " + selftest_failure(d, m->selftest_atol_));
  return m;
}

void Model::normalize(float* out, const uint8_t* gray) const {
  normalize_pixels(out, gray, mean_.data(), inv_std_.data(), size_ * size_);
}

void Model::forward(const float* x, int n, float* logits) const {
  const Network& net = *net_;
  const int64_t in_per = int64_t{size_} * size_, K = net.classes;
  const int threads = omp_in_parallel() ? 1 : cpu::num_threads();
  if (threads <= 1 || n < 1) {  // the calling thread alone
    Team serial;
    float* ws = tls_workspace.get(net);
    for (int i = 0; i < n; ++i) net.run(x + i * in_per, logits + i * K, ws, serial);
    tls_workspace.trim();
    return;
  }
  if (n == 1) {  // one image: the team shares the calling thread's workspace (see Team)
    float* ws = tls_workspace.get(net);
#pragma omp parallel num_threads(threads)
    {
      Team team;
      team.tid = omp_get_thread_num(), team.nt = omp_get_num_threads();
      net.run(x, logits, ws, team);
    }
    tls_workspace.trim();
    return;
  }
  // Whole images per thread, each in its own workspace.
  const int nt = std::min(n, threads);
  bool no_memory = false;
#pragma omp parallel num_threads(nt)
  {
    float* ws = nullptr;
    try {
      ws = tls_workspace.get(net);
    } catch (const std::bad_alloc&) {
#pragma omp atomic write
      no_memory = true;
    }
    Team mine;
#pragma omp for schedule(static)
    for (int i = 0; i < n; ++i)
      if (ws) net.run(x + i * in_per, logits + i * K, ws, mine);
    tls_workspace.trim();
  }
  if (no_memory) throw std::bad_alloc();
}

float Model::selftest_diff() const {
  Floats z(selftest_logits_.size());
  forward(selftest_input_.data(), 1, z.data());
  float d = 0.0f;
  for (size_t i = 0; i < z.size(); ++i) {
    const float e = std::fabs(z[i] - selftest_logits_[i]);
    if (std::isnan(e)) return e;  // NaN must fail the test, not hide behind max()
    d = std::max(d, e);
  }
  return d;
}

}  // namespace tfe::engine

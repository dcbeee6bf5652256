// Runs every op of csrc/ops/cuda_kernels.h under the host emulation (emulate.h) and the CPU
// kernel of csrc/ops/cpu_kernels.h on identical inputs, and compares the results.
//
//   driver [--tol=op:atol:rtol ...] [--only=op]
//
// One line per case, "PASS op case" or "FAIL op case detail"; exit status 1 if any failed.
// The tolerances come from tests/tolerances.py (test_cuda_emulated.py passes them); an op
// compared with a tolerance that was not given fails. Exact ops are compared bit for bit.
//
// Device buffers are host vectors with guards on both sides (NaNs as float): a kernel
// writing out of bounds breaks a guard, one reading out of bounds picks up NaNs. Outputs start filled with garbage (assigned outputs) or with the same
// random values on both sides (accumulated outputs, "+="), and some cases pass pointers
// offset by one float so that the vectorised (float4) paths and their scalar fallbacks
// both run.
#include <cinttypes>
#include <cstdarg>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu_kernels.h"
#include "ops/cuda_kernels.h"
#include "emulate.h"

namespace {

// ---- inputs ----------------------------------------------------------------------------------
std::mt19937_64 g_rng(20240611);

std::vector<float> uniform(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(g_rng);
  return v;
}
std::vector<float> integers(size_t n, int lo, int hi) {  // many exact ties
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(d(g_rng));
  return v;
}
int randint(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_rng); }

// A device buffer: the data between two guards, `shift` elements into the allocation
// (shift = 1 makes a float pointer 4 bytes off 16-byte alignment). The guards repeat a
// 32-bit word that is a NaN as a float and differs from buffer to buffer, so an
// out-of-bounds read yields NaN and an out-of-bounds write shows even when it copies
// another buffer's guard.
uint32_t g_guard_serial = 0;

template <class T>
struct Dev {
  static constexpr size_t kGuard = 16;  // elements on each side
  std::vector<T> mem;
  size_t n, off;
  unsigned char pattern[4];
  Dev(const std::vector<T>& v, size_t shift = 0) : n(v.size()), off(kGuard + shift) {
    const uint32_t word = 0x7FC00000u | ((++g_guard_serial * 2654435761u) >> 10);
    std::memcpy(pattern, &word, 4);
    mem.resize(v.size() + 2 * kGuard + shift);
    unsigned char* b = reinterpret_cast<unsigned char*>(mem.data());
    for (size_t i = 0; i < mem.size() * sizeof(T); ++i) b[i] = pattern[i % 4];
    if (!v.empty()) std::memcpy(mem.data() + off, v.data(), v.size() * sizeof(T));
  }
  explicit Dev(size_t count, size_t shift = 0) : Dev(std::vector<T>(count), shift) {
    std::memset(static_cast<void*>(p()), 0x7F, n * sizeof(T));  // garbage for assigned outputs
  }
  T* p() { return mem.data() + off; }
  std::vector<T> host() const { return std::vector<T>(mem.begin() + off, mem.begin() + off + n); }
  bool guards_ok() const {
    const unsigned char* b = reinterpret_cast<const unsigned char*>(mem.data());
    for (size_t i = 0; i < off * sizeof(T); ++i)
      if (b[i] != pattern[i % 4]) return false;
    for (size_t i = (off + n) * sizeof(T); i < mem.size() * sizeof(T); ++i)
      if (b[i] != pattern[i % 4]) return false;
    return true;
  }
};

// ---- checking --------------------------------------------------------------------------------
struct Tol {
  double atol = -1, rtol = -1;  // < 0: not given
};
std::map<std::string, Tol> g_tol;
int g_pass = 0, g_fail = 0;

struct Case {
  std::string op, name, err;
  double use = 0;  // largest err / bound over the toleranced comparisons
  Case(std::string o, std::string n) : op(std::move(o)), name(std::move(n)) {}
  void fail(const std::string& m) {
    if (err.empty()) err = m;
  }
  // Runs the emulated call; an exception (a launch the wrapper found failed) fails the case.
  void gpu(const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      fail(std::string("CUDA wrapper threw: ") + e.what());
    }
    for (const std::string& s : emu::take_faults()) fail("emulation fault: " + s);
    if (cudaGetLastError() != cudaSuccess) fail("a CUDA error was left pending");
  }
  ~Case() {
    if (err.empty()) {
      ++g_pass;
      if (use > 0)
        std::printf("PASS %s %s (max error %.2g of the tolerance)\n", op.c_str(), name.c_str(), use);
      else
        std::printf("PASS %s %s\n", op.c_str(), name.c_str());
    } else {
      ++g_fail;
      std::printf("FAIL %s %s %s\n", op.c_str(), name.c_str(), err.c_str());
    }
    std::fflush(stdout);
  }
};

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

template <class T>
std::string show(T v) {
  if constexpr (std::is_same_v<T, float>) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return fmt("%.9g (0x%08x)", v, b);
  } else {
    return std::to_string(static_cast<long long>(v));
  }
}

template <class T>
void exact(Case& c, const char* what, const std::vector<T>& cpu, const Dev<T>& d) {
  if (!d.guards_ok()) return c.fail(fmt("%s: written out of bounds (guard bytes changed)", what));
  const std::vector<T> g = d.host();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < cpu.size(); ++i)
    if (std::memcmp(&cpu[i], &g[i], sizeof(T)) != 0 && bad++ == 0) first = i;
  if (bad)
    c.fail(fmt("%s: %zu of %zu elements differ (must be bit-exact); first at %zu: cuda %s cpu %s",
               what, bad, cpu.size(), first, show(g[first]).c_str(), show(cpu[first]).c_str()));
}

// |cuda - cpu| <= atol * S + rtol * |cpu|. The tolerance table assumes O(1) quantities; S
// carries it to tensors of any scale: S = max |cpu| over the tensor, or, where given, a
// per-element unit. The batch-norm input gradient needs the unit: it is a cancellation,
// gamma*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)), whose rounding error is a few ulp of
// gamma*invstd*|dy| however small the result (N = 2!), as in tests/helpers.py bn_dx_unit.
void close(Case& c, const char* what, const std::vector<float>& cpu, const Dev<float>& d,
           const std::vector<double>& unit = {}) {
  const Tol t = g_tol.count(c.op) ? g_tol[c.op] : Tol{};
  if (t.atol < 0) return c.fail(fmt("no tolerance given for op %s", c.op.c_str()));
  if (!d.guards_ok()) return c.fail(fmt("%s: written out of bounds (guard bytes changed)", what));
  const std::vector<float> g = d.host();
  double S = 0;
  for (float v : cpu) S = std::fmax(S, std::fabs(static_cast<double>(v)));
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double r = cpu[i], a = g[i];
    if (!std::isfinite(r)) return c.fail(fmt("%s: the CPU result has a non-finite value at %zu", what, i));
    const double scale = unit.empty() ? S : unit[i];
    const double err = std::fabs(a - r), bound = t.atol * scale + t.rtol * std::fabs(r);
    if (!(err <= bound)) {
      if (bad++ == 0 || err - bound > worst_excess) worst = i, worst_excess = err - bound;
    } else if (err > 0) {
      c.use = std::fmax(c.use, err / bound);
    }
  }
  if (bad)
    c.fail(fmt("%s: %zu of %zu elements beyond atol=%g*%.3g rtol=%g; worst at %zu: cuda %.9g cpu %.9g",
               what, bad, cpu.size(), t.atol, unit.empty() ? S : unit[worst], t.rtol, worst,
               g[worst], cpu[worst]));
}

std::string shape(std::initializer_list<long long> v) {
  std::string s;
  for (long long x : v) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

// gamma[c] * invstd[c] * max |dy| over channel c, per element of x[N, C, HW].
std::vector<double> bn_dx_unit(const std::vector<float>& dy, const std::vector<float>& gamma,
                               const std::vector<float>& invstd, int N, int C, int HW) {
  std::vector<double> m(C, 0.0), u(dy.size());
  for (int n = 0; n < N; ++n)
    for (int ch = 0; ch < C; ++ch)
      for (int i = 0; i < HW; ++i)
        m[ch] = std::fmax(m[ch], std::fabs(dy[(static_cast<size_t>(n) * C + ch) * HW + i]));
  for (int n = 0; n < N; ++n)
    for (int ch = 0; ch < C; ++ch)
      for (int i = 0; i < HW; ++i)
        u[(static_cast<size_t>(n) * C + ch) * HW + i] =
            std::fabs(static_cast<double>(gamma[ch]) * invstd[ch]) * m[ch];
  return u;
}

// ---- elementwise -----------------------------------------------------------------------------
void test_relu_add() {
  for (long long n : {1LL, 31LL, 257LL, 1000LL, 4099LL}) {
    std::vector<float> x = uniform(n, -2, 2), dy = uniform(n);
    if (n > 8) x[1] = -0.0f, x[2] = 0.0f, x[3] = INFINITY, x[4] = -INFINITY, x[5] = 1e-45f, x[6] = NAN;
    {
      Case c("relu", "forward n=" + std::to_string(n));
      std::vector<float> y(n);
      tfe::cpu::relu_forward(y.data(), x.data(), n);
      Dev<float> dX(x), dY(n);
      c.gpu([&] { tfe::cuda::relu_forward(dY.p(), dX.p(), n); });
      exact(c, "y", y, dY);
      Case b("relu", "backward n=" + std::to_string(n));
      std::vector<float> dx(n), yb = y;
      if (n > 8) yb[6] = 0.0f;  // the backward's mask input: y of a finite forward
      tfe::cpu::relu_backward(dx.data(), dy.data(), yb.data(), n);
      Dev<float> dDy(dy), dYy(yb), dDx(n);
      b.gpu([&] { tfe::cuda::relu_backward(dDx.p(), dDy.p(), dYy.p(), n); });
      exact(b, "dx", dx, dDx);
    }
    {
      Case c("add", "forward n=" + std::to_string(n));
      const std::vector<float> a = uniform(n, -3, 3), bb = uniform(n, -3, 3);
      std::vector<float> y(n);
      tfe::cpu::add_forward(y.data(), a.data(), bb.data(), n);
      Dev<float> dA(a, n % 2), dB(bb), dY(n, 1);
      c.gpu([&] { tfe::cuda::add_forward(dY.p(), dA.p(), dB.p(), n); });
      exact(c, "y", y, dY);
    }
  }
}

// ---- dropout -----------------------------------------------------------------------------------
uint64_t g_dropout_offset = 0;  // advance_dropout_offset calls so far

void dropout_case(long long n, float p, uint64_t seed) {
  const std::string nm = fmt("n=%lld p=%g seed=%" PRIu64 " offset=%" PRIu64, n, p, seed,
                             g_dropout_offset);
  const std::vector<float> x = uniform(n, -3, 3), dy = uniform(n);
  std::vector<float> y(n), dx(n);
  std::vector<uint8_t> mask(n);
  tfe::cpu::dropout_forward(y.data(), mask.data(), x.data(), n, p, seed + g_dropout_offset);
  {
    Case c("dropout", "forward " + nm);
    Dev<float> dX(x), dY(n);
    Dev<uint8_t> dM(n);
    c.gpu([&] { tfe::cuda::dropout_forward(dY.p(), dM.p(), dX.p(), n, p, seed); });
    exact(c, "y", y, dY);
    exact(c, "mask", mask, dM);
  }
  {
    Case c("dropout", "backward " + nm);
    tfe::cpu::dropout_backward(dx.data(), dy.data(), mask.data(), n, p);
    Dev<float> dDy(dy), dDx(n);
    Dev<uint8_t> dM(mask);
    c.gpu([&] { tfe::cuda::dropout_backward(dDx.p(), dDy.p(), dM.p(), n, p); });
    exact(c, "dx", dx, dDx);
  }
}

void test_dropout() {
  const uint64_t seeds[] = {0ULL, 42ULL, 0xFFFFFFFFFFFFFFFFULL};
  int i = 0;
  for (long long n : {1LL, 255LL, 3001LL})
    for (float p : {0.0f, 1e-9f, 0.1f, 0.5f, 1.0f / 3.0f, 1.0f}) dropout_case(n, p, seeds[i++ % 3]);
  // The per-replay counter of captured graphs: each call shifts the seed by one, on the
  // device only (the CPU sees the shifted seed explicitly).
  for (int k = 0; k < 2; ++k) {
    Case c("dropout", "advance_dropout_offset call " + std::to_string(k + 1));
    c.gpu([&] { tfe::cuda::advance_dropout_offset(); });
    ++g_dropout_offset;
  }
  dropout_case(777, 0.5f, 10);
  dropout_case(64, 0.25f, 0xFFFFFFFFFFFFFFFFULL);  // seed + offset wraps around
}

// ---- pooling ---------------------------------------------------------------------------------
void test_maxpool() {
  // N, C, H, W, k, stride, pad (pad <= k / 2, as PyTorch requires)
  const int cfgs[][7] = {{2, 3, 8, 8, 2, 2, 0}, {2, 2, 9, 7, 3, 2, 1}, {1, 3, 6, 6, 3, 1, 1},
                         {1, 2, 11, 10, 5, 3, 2}, {2, 2, 5, 5, 1, 1, 0}, {1, 1, 7, 9, 4, 1, 2},
                         {1, 2, 4, 4, 4, 4, 0}, {1, 1, 3, 5, 2, 1, 1}, {2, 1, 13, 11, 3, 3, 1},
                         {1, 1, 1, 1, 1, 1, 0}, {2, 3, 10, 10, 5, 2, 2}, {2, 16, 48, 48, 3, 2, 1}};
  for (const auto& cf : cfgs)
    for (int mode = 0; mode < 3; ++mode) {
      const int N = cf[0], C = cf[1], H = cf[2], W = cf[3], k = cf[4], s = cf[5], p = cf[6];
      const int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
      const size_t ni = static_cast<size_t>(N) * C * H * W, no = static_cast<size_t>(N) * C * Ho * Wo;
      std::vector<float> x = mode == 1 ? integers(ni, -2, 2) : uniform(ni, -3, 3);
      if (mode == 2) {
        for (size_t i = 0; i < ni; i += 7) x[i] = NAN;
        for (size_t i = 3; i < ni; i += 5) x[i] = -INFINITY;
      }
      const char* kind = mode == 0 ? "random" : mode == 1 ? "ties" : "nan/-inf";
      const std::string nm = shape({N, C, H, W}) + fmt(" k%d s%d p%d %s", k, s, p, kind);
      std::vector<float> y(no);
      std::vector<int32_t> am(no);
      tfe::cpu::maxpool2d_forward(y.data(), am.data(), x.data(), N, C, H, W, k, s, p);
      {
        Case c("maxpool", "forward " + nm);
        Dev<float> dX(x), dY(no);
        Dev<int32_t> dA(no);
        c.gpu([&] { tfe::cuda::maxpool2d_forward(dY.p(), dA.p(), dX.p(), N, C, H, W, k, s, p); });
        exact(c, "y", y, dY);
        exact(c, "argmax", am, dA);
      }
      {
        // The kernel promises the CPU's summation order for overlapping windows: bit-exact.
        Case c("maxpool", "backward " + nm);
        const std::vector<float> dy = uniform(no, -4, 4);
        std::vector<float> dx(ni);
        tfe::cpu::maxpool2d_backward(dx.data(), dy.data(), am.data(), N, C, H, W, Ho, Wo);
        Dev<float> dDy(dy), dDx(ni);
        Dev<int32_t> dA(am);
        c.gpu([&] { tfe::cuda::maxpool2d_backward(dDx.p(), dDy.p(), dA.p(), N, C, H, W, Ho, Wo); });
        exact(c, "dx", dx, dDx);
      }
    }
  // A window of -inf only reports its first in-plane element.
  {
    Case c("maxpool", "forward all -inf 1x1x5x5 k3 s2 p1");
    const std::vector<float> x(25, -INFINITY);
    std::vector<float> y(9);
    std::vector<int32_t> am(9);
    tfe::cpu::maxpool2d_forward(y.data(), am.data(), x.data(), 1, 1, 5, 5, 3, 2, 1);
    Dev<float> dX(x), dY(9);
    Dev<int32_t> dA(9);
    c.gpu([&] { tfe::cuda::maxpool2d_forward(dY.p(), dA.p(), dX.p(), 1, 1, 5, 5, 3, 2, 1); });
    exact(c, "y", y, dY);
    exact(c, "argmax", am, dA);
  }
}

void test_gap() {
  // N, C, HW, pointer shift (1: misaligned, forces the scalar path)
  const int cfgs[][4] = {{1, 1, 1, 0}, {2, 3, 7, 0}, {2, 5, 64, 0}, {2, 5, 64, 1},
                         {3, 2, 49, 0}, {1, 16, 100, 0}, {2, 1, 4, 1}, {5, 33, 9, 0},
                         {8, 16, 2304, 0}};
  for (const auto& cf : cfgs) {
    const int N = cf[0], C = cf[1], HW = cf[2];
    const size_t sh = cf[3];
    const std::string nm = shape({N, C, HW}) + (sh ? " misaligned" : "");
    const size_t ni = static_cast<size_t>(N) * C * HW;
    {
      Case c("gap", "forward " + nm);
      const std::vector<float> x = uniform(ni, -2, 3);
      std::vector<float> y(N * C);
      tfe::cpu::gap_forward(y.data(), x.data(), N, C, HW);
      Dev<float> dX(x, sh), dY(N * C);
      c.gpu([&] { tfe::cuda::gap_forward(dY.p(), dX.p(), N, C, HW); });
      close(c, "y", y, dY);
    }
    {
      Case c("gap", "backward " + nm);
      const std::vector<float> dy = uniform(N * C);
      std::vector<float> dx(ni);
      tfe::cpu::gap_backward(dx.data(), dy.data(), N, C, HW);
      Dev<float> dDy(dy), dDx(ni, sh);
      c.gpu([&] { tfe::cuda::gap_backward(dDx.p(), dDy.p(), N, C, HW); });
      exact(c, "dx", dx, dDx);  // one division per element, as on the CPU
    }
  }
}

// ---- GEMM-based ops ------------------------------------------------------------------------------
void conv_case(int N, int C, int H, int W, int K, int k, int s, int p, bool bias) {
  const int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  const std::string nm = shape({N, C, H, W}) + fmt(" K%d k%d s%d p%d%s", K, k, s, p, bias ? "" : " nobias");
  const float ws = 1.0f / std::sqrt(static_cast<float>(C * k * k));
  const std::vector<float> x = uniform(static_cast<size_t>(N) * C * H * W),
                           w = uniform(static_cast<size_t>(K) * C * k * k, -ws, ws),
                           b = uniform(K), dy = uniform(static_cast<size_t>(N) * K * Ho * Wo),
                           dw0 = uniform(w.size()), db0 = uniform(K);
  {
    Case c("conv2d", "forward " + nm);
    std::vector<float> y(dy.size());
    tfe::cpu::conv2d_forward(y.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, H, W, K, k, s, p);
    Dev<float> dX(x), dW(w), dB(b), dY(y.size());
    c.gpu([&] {
      tfe::cuda::conv2d_forward(dY.p(), dX.p(), dW.p(), bias ? dB.p() : nullptr, N, C, H, W, K, k, s, p);
    });
    close(c, "y", y, dY);
  }
  // all three gradients (dw, db accumulate into non-zero buffers), then each one alone
  for (int which = 0; which < 4; ++which) {
    const bool wdx = which == 0 || which == 1, wdw = which == 0 || which == 2, wdb = which == 0 || which == 3;
    const char* tag[] = {"dx+dw+db", "dx only", "dw only", "db only"};
    Case c("conv2d", std::string("backward ") + tag[which] + " " + nm);
    std::vector<float> dx(x.size()), dw = dw0, db = db0;
    tfe::cpu::conv2d_backward(wdx ? dx.data() : nullptr, wdw ? dw.data() : nullptr,
                              wdb ? db.data() : nullptr, dy.data(), x.data(), w.data(), N, C, H, W,
                              K, k, s, p);
    Dev<float> dDx(x.size()), dDw(dw0), dDb(db0), dDy(dy), dX(x), dW(w);
    c.gpu([&] {
      tfe::cuda::conv2d_backward(wdx ? dDx.p() : nullptr, wdw ? dDw.p() : nullptr,
                                 wdb ? dDb.p() : nullptr, dDy.p(), dX.p(), dW.p(), N, C, H, W, K, k,
                                 s, p);
    });
    if (wdx) close(c, "dx", dx, dDx);
    close(c, "dw", dw, dDw);  // untouched (exactly dw0) when not requested
    close(c, "db", db, dDb);
    if (!wdw) exact(c, "dw (not requested)", dw0, dDw);
    if (!wdb) exact(c, "db (not requested)", db0, dDb);
  }
}

void test_conv2d() {
  conv_case(2, 3, 7, 5, 4, 3, 1, 1, true);
  conv_case(1, 1, 7, 5, 3, 3, 2, 1, false);
  conv_case(2, 2, 9, 8, 5, 1, 2, 0, true);
  conv_case(3, 4, 6, 7, 2, 2, 3, 0, true);
  conv_case(2, 3, 5, 5, 17, 4, 2, 2, true);
  conv_case(1, 2, 5, 4, 3, 2, 1, 1, false);
  conv_case(2, 3, 7, 7, 3, 1, 3, 0, false);
  conv_case(1, 1, 1, 3, 2, 1, 2, 0, true);
  conv_case(2, 5, 11, 10, 33, 3, 2, 1, true);
  conv_case(1, 2, 8, 8, 3, 5, 3, 2, true);
  conv_case(2, 3, 9, 9, 4, 3, 2, 0, true);
  conv_case(1, 8, 12, 12, 16, 3, 1, 1, false);
  conv_case(2, 1, 11, 9, 1, 5, 1, 2, true);
  conv_case(1, 3, 21, 19, 8, 3, 1, 1, true);  // more than one 64-wide output tile
  // Layer-like shapes: many tiles, split-K weight gradients, strided dx phases.
  conv_case(2, 16, 24, 24, 16, 3, 1, 1, true);
  conv_case(2, 8, 48, 48, 16, 3, 2, 1, false);
  conv_case(1, 3, 40, 40, 8, 5, 1, 2, true);
}

void linear_case(int N, int I, int O, bool bias) {
  const std::string nm = fmt("N%d I%d O%d%s", N, I, O, bias ? "" : " nobias");
  const float ws = 1.0f / std::sqrt(static_cast<float>(I));
  const std::vector<float> x = uniform(static_cast<size_t>(N) * I),
                           w = uniform(static_cast<size_t>(O) * I, -ws, ws), b = uniform(O),
                           dy = uniform(static_cast<size_t>(N) * O), dw0 = uniform(w.size()),
                           db0 = uniform(O);
  {
    Case c("linear", "forward " + nm);
    std::vector<float> y(dy.size());
    tfe::cpu::linear_forward(y.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, I, O);
    Dev<float> dX(x), dW(w), dB(b), dY(y.size());
    c.gpu([&] { tfe::cuda::linear_forward(dY.p(), dX.p(), dW.p(), bias ? dB.p() : nullptr, N, I, O); });
    close(c, "y", y, dY);
  }
  for (int which = 0; which < 3; ++which) {
    const bool wdx = which != 2, wdb = which != 1;
    const char* tag[] = {"dx+dw+db", "dx+dw (db null)", "dw+db (dx null)"};
    Case c("linear", std::string("backward ") + tag[which] + " " + nm);
    std::vector<float> dx(x.size()), dw = dw0, db = db0;
    tfe::cpu::linear_backward(wdx ? dx.data() : nullptr, dw.data(), wdb ? db.data() : nullptr,
                              dy.data(), x.data(), w.data(), N, I, O);
    Dev<float> dDx(x.size()), dDw(dw0), dDb(db0), dDy(dy), dX(x), dW(w);
    c.gpu([&] {
      tfe::cuda::linear_backward(wdx ? dDx.p() : nullptr, dDw.p(), wdb ? dDb.p() : nullptr, dDy.p(),
                                 dX.p(), dW.p(), N, I, O);
    });
    if (wdx) close(c, "dx", dx, dDx);
    close(c, "dw", dw, dDw);
    close(c, "db", db, dDb);
    if (!wdb) exact(c, "db (not requested)", db0, dDb);
  }
}

void test_linear() {
  linear_case(5, 7, 3, true);
  linear_case(1, 1, 1, false);
  linear_case(2, 1, 5, true);
  linear_case(33, 200, 70, true);
  linear_case(2, 300, 8, true);
  linear_case(3, 65, 40, false);
  linear_case(17, 3, 129, true);
  linear_case(128, 300, 8, true);  // long batch reduction for dw and db
  linear_case(8, 960, 7, true);    // long reduction for y
}

// ---- batch norm family -----------------------------------------------------------------------------
struct BnIn {
  std::vector<float> x, gamma, beta, rm, rv, dy, dg0, db0;
};
BnIn bn_inputs(int N, int C, int HW) {
  const size_t n = static_cast<size_t>(N) * C * HW;
  BnIn in;
  in.x = uniform(n, -1, 3);  // a non-zero mean, as after a ReLU
  in.gamma = uniform(C, 0.5f, 1.5f);
  in.beta = uniform(C);
  in.rm = uniform(C);
  in.rv = uniform(C, 0.5f, 2.0f);
  in.dy = uniform(n);
  in.dg0 = uniform(C);
  in.db0 = uniform(C);
  return in;
}

void batchnorm_case(int N, int C, int HW, size_t sh) {
  const std::string nm = shape({N, C, HW}) + (sh ? " misaligned" : "");
  const float eps = 1e-5f, mom = 0.1f;
  const BnIn in = bn_inputs(N, C, HW);
  const size_t n = in.x.size();
  std::vector<float> y(n), sm(C), si(C), rm = in.rm, rv = in.rv;
  tfe::cpu::batchnorm_forward_train(y.data(), sm.data(), si.data(), rm.data(), rv.data(), in.x.data(),
                                    in.gamma.data(), in.beta.data(), N, C, HW, eps, mom);
  for (int with_running = 1; with_running >= 0; --with_running) {
    Case c("batchnorm", "forward_train " + nm + (with_running ? "" : " (no running stats)"));
    Dev<float> dY(n, sh), dSm(C), dSi(C), dRm(in.rm), dRv(in.rv), dX(in.x, sh), dG(in.gamma), dB(in.beta);
    c.gpu([&] {
      tfe::cuda::batchnorm_forward_train(dY.p(), dSm.p(), dSi.p(), with_running ? dRm.p() : nullptr,
                                         with_running ? dRv.p() : nullptr, dX.p(), dG.p(), dB.p(),
                                         N, C, HW, eps, mom);
    });
    close(c, "y", y, dY);
    close(c, "save_mean", sm, dSm);
    close(c, "save_invstd", si, dSi);
    if (with_running) {
      close(c, "running_mean", rm, dRm);
      close(c, "running_var", rv, dRv);
    } else {
      exact(c, "running_mean (null)", in.rm, dRm);
    }
  }
  {
    Case c("batchnorm", "forward_eval " + nm);
    std::vector<float> ye(n);
    tfe::cpu::batchnorm_forward_eval(ye.data(), in.x.data(), in.gamma.data(), in.beta.data(),
                                     in.rm.data(), in.rv.data(), N, C, HW, eps);
    Dev<float> dY(n, sh), dX(in.x, sh), dG(in.gamma), dB(in.beta), dRm(in.rm), dRv(in.rv);
    c.gpu([&] {
      tfe::cuda::batchnorm_forward_eval(dY.p(), dX.p(), dG.p(), dB.p(), dRm.p(), dRv.p(), N, C, HW, eps);
    });
    close(c, "y", ye, dY);
  }
  for (int which = 0; which < 3; ++which) {
    const bool wdx = which != 2, wpar = which != 1;
    const char* tag[] = {"dx+dgamma+dbeta", "dx only", "dgamma+dbeta only"};
    Case c("batchnorm", std::string("backward ") + tag[which] + " " + nm);
    std::vector<float> dx(n), dg = in.dg0, db = in.db0;
    tfe::cpu::batchnorm_backward(wdx ? dx.data() : nullptr, wpar ? dg.data() : nullptr,
                                 wpar ? db.data() : nullptr, in.dy.data(), in.x.data(),
                                 in.gamma.data(), sm.data(), si.data(), N, C, HW);
    Dev<float> dDx(n, sh), dDg(in.dg0), dDb(in.db0), dDy(in.dy, sh), dX(in.x, sh), dG(in.gamma),
        dSm(sm), dSi(si);
    c.gpu([&] {
      tfe::cuda::batchnorm_backward(wdx ? dDx.p() : nullptr, wpar ? dDg.p() : nullptr,
                                    wpar ? dDb.p() : nullptr, dDy.p(), dX.p(), dG.p(), dSm.p(),
                                    dSi.p(), N, C, HW);
    });
    if (wdx) close(c, "dx", dx, dDx, bn_dx_unit(in.dy, in.gamma, si, N, C, HW));
    close(c, "dgamma", dg, dDg);
    close(c, "dbeta", db, dDb);
  }
}

void test_batchnorm() {
  batchnorm_case(2, 3, 7, 0);
  batchnorm_case(1, 2, 5, 0);
  batchnorm_case(2, 4, 16, 0);   // HW % 4 == 0, aligned: float4 path
  batchnorm_case(2, 4, 16, 1);   // same shape, misaligned: scalar path
  batchnorm_case(3, 1, 36, 0);
  batchnorm_case(2, 3, 2000, 0);  // several chunks per channel
  batchnorm_case(2, 5, 1, 0);     // BatchNorm1d: columns layout
  batchnorm_case(40, 33, 1, 0);   // two column tiles, more rows than row groups
  batchnorm_case(1, 3, 2, 0);     // N = 1
  batchnorm_case(8, 16, 2304, 0);  // a paper layer: 8x16x48x48
  batchnorm_case(130, 70, 1, 0);   // BatchNorm1d, three column tiles
}

void residual_case(int N, int C, int HW, size_t sh) {
  const std::string nm = shape({N, C, HW}) + (sh ? " misaligned" : "");
  const float eps = 1e-5f, mom = 0.1f;
  const BnIn in = bn_inputs(N, C, HW);
  const size_t n = in.x.size();
  const std::vector<float> sc = uniform(n);
  std::vector<float> y(n), sm(C), si(C), rm = in.rm, rv = in.rv;
  tfe::cpu::residual_forward_train(y.data(), sm.data(), si.data(), rm.data(), rv.data(), in.x.data(),
                                   sc.data(), in.gamma.data(), in.beta.data(), N, C, HW, eps, mom);
  {
    Case c("residual", "forward_train " + nm);
    Dev<float> dY(n, sh), dSm(C), dSi(C), dRm(in.rm), dRv(in.rv), dX(in.x, sh), dS(sc), dG(in.gamma),
        dB(in.beta);
    c.gpu([&] {
      tfe::cuda::residual_forward_train(dY.p(), dSm.p(), dSi.p(), dRm.p(), dRv.p(), dX.p(), dS.p(),
                                        dG.p(), dB.p(), N, C, HW, eps, mom);
    });
    close(c, "y", y, dY);
    close(c, "save_mean", sm, dSm);
    close(c, "save_invstd", si, dSi);
    close(c, "running_mean", rm, dRm);
    close(c, "running_var", rv, dRv);
  }
  {
    Case c("residual", "forward_eval " + nm);
    std::vector<float> ye(n);
    tfe::cpu::residual_forward_eval(ye.data(), in.x.data(), sc.data(), in.gamma.data(), in.beta.data(),
                                    in.rm.data(), in.rv.data(), N, C, HW, eps);
    Dev<float> dY(n, sh), dX(in.x, sh), dS(sc), dG(in.gamma), dB(in.beta), dRm(in.rm), dRv(in.rv);
    c.gpu([&] {
      tfe::cuda::residual_forward_eval(dY.p(), dX.p(), dS.p(), dG.p(), dB.p(), dRm.p(), dRv.p(), N,
                                       C, HW, eps);
    });
    close(c, "y", ye, dY);
  }
  for (int which = 0; which < 3; ++which) {
    const bool wdx = which != 2, wds = which != 1, wpar = which != 1;
    const char* tag[] = {"all", "dx only", "dshortcut+dgamma+dbeta"};
    Case c("residual", std::string("backward ") + tag[which] + " " + nm);
    std::vector<float> dx(n), ds(n), dg = in.dg0, db = in.db0;
    tfe::cpu::residual_backward(wdx ? dx.data() : nullptr, wds ? ds.data() : nullptr,
                                wpar ? dg.data() : nullptr, wpar ? db.data() : nullptr,
                                in.dy.data(), y.data(), in.x.data(), in.gamma.data(), sm.data(),
                                si.data(), N, C, HW);
    Dev<float> dDx(n, sh), dDs(n), dDg(in.dg0), dDb(in.db0), dDy(in.dy), dY(y, sh), dX(in.x, sh),
        dG(in.gamma), dSm(sm), dSi(si);
    c.gpu([&] {
      tfe::cuda::residual_backward(wdx ? dDx.p() : nullptr, wds ? dDs.p() : nullptr,
                                   wpar ? dDg.p() : nullptr, wpar ? dDb.p() : nullptr, dDy.p(),
                                   dY.p(), dX.p(), dG.p(), dSm.p(), dSi.p(), N, C, HW);
    });
    if (wdx) close(c, "dx", dx, dDx, bn_dx_unit(in.dy, in.gamma, si, N, C, HW));
    if (wds) close(c, "dshortcut", ds, dDs);
    close(c, "dgamma", dg, dDg);
    close(c, "dbeta", db, dDb);
  }
}

void test_residual() {
  residual_case(2, 3, 7, 0);
  residual_case(2, 4, 16, 0);
  residual_case(2, 4, 16, 1);
  residual_case(1, 2, 9, 0);
  residual_case(3, 5, 1, 0);
  residual_case(4, 16, 576, 0);
}

void tfe_head_case(int N, int Di, int De, int O) {
  const std::string nm = fmt("N%d Di%d De%d O%d", N, Di, De, O);
  const int D = Di + De;
  const float eps = 1e-5f, mom = 0.1f;
  const std::vector<float> zi = uniform(static_cast<size_t>(N) * Di, -1, 3),
                           ze = uniform(static_cast<size_t>(N) * De, -2, 1),
                           gamma = uniform(D, 0.5f, 1.5f), beta = uniform(D), rm0 = uniform(D),
                           rv0 = uniform(D, 0.5f, 2.0f),
                           w = uniform(static_cast<size_t>(O) * D, -0.3f, 0.3f), b = uniform(O),
                           dl = uniform(static_cast<size_t>(N) * O), dg0 = uniform(D),
                           dbt0 = uniform(D), dw0 = uniform(w.size()), db0 = uniform(O);
  std::vector<float> lg(static_cast<size_t>(N) * O), zh(static_cast<size_t>(N) * D), sm(D), si(D),
      rm = rm0, rv = rv0;
  tfe::cpu::tfe_head_forward_train(lg.data(), zh.data(), sm.data(), si.data(), rm.data(), rv.data(),
                                   zi.data(), ze.data(), gamma.data(), beta.data(), w.data(),
                                   b.data(), N, Di, De, O, eps, mom);
  {
    Case c("tfe_head", "forward_train " + nm);
    Dev<float> dL(lg.size()), dZh(zh.size()), dSm(D), dSi(D), dRm(rm0), dRv(rv0), dZi(zi), dZe(ze),
        dG(gamma), dB(beta), dW(w), dBias(b);
    c.gpu([&] {
      tfe::cuda::tfe_head_forward_train(dL.p(), dZh.p(), dSm.p(), dSi.p(), dRm.p(), dRv.p(), dZi.p(),
                                        dZe.p(), dG.p(), dB.p(), dW.p(), dBias.p(), N, Di, De, O,
                                        eps, mom);
    });
    close(c, "logits", lg, dL);
    close(c, "z_hat", zh, dZh);
    close(c, "save_mean", sm, dSm);
    close(c, "save_invstd", si, dSi);
    close(c, "running_mean", rm, dRm);
    close(c, "running_var", rv, dRv);
  }
  {
    Case c("tfe_head", "forward_eval " + nm);
    std::vector<float> le(lg.size()), ze_hat(zh.size());
    tfe::cpu::tfe_head_forward_eval(le.data(), ze_hat.data(), zi.data(), ze.data(), gamma.data(),
                                    beta.data(), rm0.data(), rv0.data(), w.data(), b.data(), N, Di,
                                    De, O, eps);
    Dev<float> dL(lg.size()), dZh(zh.size()), dZi(zi), dZe(ze), dG(gamma), dB(beta), dRm(rm0),
        dRv(rv0), dW(w), dBias(b);
    c.gpu([&] {
      tfe::cuda::tfe_head_forward_eval(dL.p(), dZh.p(), dZi.p(), dZe.p(), dG.p(), dB.p(), dRm.p(),
                                       dRv.p(), dW.p(), dBias.p(), N, Di, De, O, eps);
    });
    close(c, "logits", le, dL);
    close(c, "z_hat", ze_hat, dZh);
  }
  {
    Case c("tfe_head", "backward " + nm);
    std::vector<float> dzi(zi.size()), dze(ze.size()), dg = dg0, dbt = dbt0, dw = dw0, db = db0;
    tfe::cpu::tfe_head_backward(dzi.data(), dze.data(), dg.data(), dbt.data(), dw.data(), db.data(),
                                dl.data(), zi.data(), ze.data(), zh.data(), gamma.data(), sm.data(),
                                si.data(), w.data(), N, Di, De, O);
    Dev<float> dDzi(zi.size()), dDze(ze.size()), dDg(dg0), dDbt(dbt0), dDw(dw0), dDb(db0), dDl(dl),
        dZi(zi), dZe(ze), dZh(zh), dG(gamma), dSm(sm), dSi(si), dW(w);
    c.gpu([&] {
      tfe::cuda::tfe_head_backward(dDzi.p(), dDze.p(), dDg.p(), dDbt.p(), dDw.p(), dDb.p(), dDl.p(),
                                   dZi.p(), dZe.p(), dZh.p(), dG.p(), dSm.p(), dSi.p(), dW.p(), N,
                                   Di, De, O);
    });
    // dz[n, d] = sum_o dlogits[n, o] w[o, d], then the batch-norm backward per feature
    std::vector<float> dz(static_cast<size_t>(N) * D);
    for (int r = 0; r < N; ++r)
      for (int d = 0; d < D; ++d) {
        double s = 0;
        for (int o = 0; o < O; ++o) s += static_cast<double>(dl[r * O + o]) * w[o * D + d];
        dz[r * D + d] = static_cast<float>(s);
      }
    const std::vector<double> unit = bn_dx_unit(dz, gamma, si, N, D, 1);
    std::vector<double> ui, ue;
    for (int r = 0; r < N; ++r) {
      ui.insert(ui.end(), unit.begin() + r * D, unit.begin() + r * D + Di);
      ue.insert(ue.end(), unit.begin() + r * D + Di, unit.begin() + (r + 1) * D);
    }
    close(c, "dzi", dzi, dDzi, ui);
    close(c, "dze", dze, dDze, ue);
    close(c, "dgamma", dg, dDg);
    close(c, "dbeta", dbt, dDbt);
    close(c, "dw", dw, dDw);
    close(c, "db", db, dDb);
  }
}

void test_tfe_head() {
  tfe_head_case(4, 5, 3, 2);
  tfe_head_case(2, 33, 7, 7);
  tfe_head_case(37, 20, 1, 3);
  tfe_head_case(3, 1, 1, 1);
  tfe_head_case(9, 40, 30, 8);
  tfe_head_case(64, 100, 60, 7);
}

// ---- loss, concat, optimiser ---------------------------------------------------------------
void test_cross_entropy() {
  for (int K : {1, 2, 7, 37})
    for (int N : {1, 2, 33, 1000}) {
      std::vector<float> logits = uniform(static_cast<size_t>(N) * K, -3, 3);
      if (N * K > 8) logits[3] = 80.0f, logits[4] = -80.0f;  // large spread: the max shift matters
      std::vector<int64_t> lab(N);
      for (int64_t& v : lab) v = randint(0, K - 1);
      std::vector<float> tgt = uniform(static_cast<size_t>(N) * K, 0, 1);
      for (int soft = 0; soft < 2; ++soft) {
        const std::string nm = fmt("N%d K%d", N, K);
        std::vector<float> loss(1), prob(logits.size());
        if (soft)
          tfe::cpu::cross_entropy_forward(loss.data(), prob.data(), logits.data(), nullptr, tgt.data(), N, K);
        else
          tfe::cpu::cross_entropy_forward(loss.data(), prob.data(), logits.data(), lab.data(), nullptr, N, K);
        {
          Case c("cross_entropy", std::string(soft ? "soft " : "") + "forward " + nm);
          Dev<float> dL(1), dP(prob.size()), dLg(logits), dT(tgt);
          Dev<int64_t> dLab(lab);
          c.gpu([&] {
            if (soft)
              tfe::cuda::cross_entropy_forward(dL.p(), dP.p(), dLg.p(), nullptr, dT.p(), N, K);
            else
              tfe::cuda::cross_entropy_forward(dL.p(), dP.p(), dLg.p(), dLab.p(), nullptr, N, K);
          });
          close(c, "loss", loss, dL);
          close(c, "prob", prob, dP);
        }
        {
          Case c("cross_entropy", std::string(soft ? "soft " : "") + "backward " + nm);
          const float dloss = 0.7f;
          std::vector<float> g(prob.size());
          if (soft)
            tfe::cpu::cross_entropy_backward(g.data(), prob.data(), nullptr, tgt.data(), N, K, dloss);
          else
            tfe::cpu::cross_entropy_backward(g.data(), prob.data(), lab.data(), nullptr, N, K, dloss);
          Dev<float> dG(g.size()), dP(prob), dT(tgt);
          Dev<int64_t> dLab(lab);
          c.gpu([&] {
            if (soft)
              tfe::cuda::cross_entropy_backward(dG.p(), dP.p(), nullptr, dT.p(), N, K, dloss);
            else
              tfe::cuda::cross_entropy_backward(dG.p(), dP.p(), dLab.p(), nullptr, N, K, dloss);
          });
          close(c, "dlogits", g, dG);
        }
      }
    }
}

void test_concat() {
  struct Cfg {
    int count, N, inner, max_size;
  };
  // 33 and 70 tensors: more than one launch's parameter table (32 entries)
  for (Cfg cf : {Cfg{1, 2, 5, 4}, Cfg{3, 1, 1, 3}, Cfg{5, 3, 7, 2}, Cfg{33, 2, 3, 3},
                 Cfg{70, 3, 1, 4}, Cfg{40, 1, 9, 1}}) {
    const int count = cf.count, N = cf.N, inner = cf.inner;
    std::vector<int> sizes(count);
    for (int& s : sizes) s = randint(0, cf.max_size);
    if (count == 3) sizes = {300, 0, 1000};  // a tensor of several blocks, and an empty one
    if (count >= 33) sizes[count / 2] = 0;
    long long row = 0;
    for (int s : sizes) row += static_cast<long long>(s) * inner;
    const std::string nm = fmt("count=%d N=%d inner=%d", count, N, inner);
    std::vector<std::vector<float>> xs(count);
    std::vector<const float*> xp(count), dxp(count);
    std::vector<Dev<float>> dxs;
    dxs.reserve(count);
    for (int j = 0; j < count; ++j) {
      xs[j] = uniform(static_cast<size_t>(N) * sizes[j] * inner);
      xp[j] = xs[j].data();
      dxs.emplace_back(xs[j], j % 2);
      dxp[j] = dxs[j].p();
    }
    std::vector<float> y(static_cast<size_t>(N) * row);
    tfe::cpu::concat_forward(y.data(), xp.data(), sizes.data(), count, N, inner);
    {
      Case c("concat", "forward " + nm);
      Dev<float> dY(y.size());
      c.gpu([&] { tfe::cuda::concat_forward(dY.p(), dxp.data(), sizes.data(), count, N, inner); });
      exact(c, "y", y, dY);
    }
    {
      Case c("concat", "backward " + nm + " (every 5th gradient null)");
      const std::vector<float> dy = uniform(y.size());
      std::vector<std::vector<float>> g(count);
      std::vector<float*> gp(count), dgp(count);
      std::vector<Dev<float>> dg;
      dg.reserve(count);
      for (int j = 0; j < count; ++j) {
        g[j] = uniform(xs[j].size());  // null entries must stay untouched
        dg.emplace_back(g[j]);
        gp[j] = j % 5 == 2 ? nullptr : g[j].data();
        dgp[j] = j % 5 == 2 ? nullptr : dg[j].p();
      }
      tfe::cpu::concat_backward(gp.data(), dy.data(), sizes.data(), count, N, inner);
      Dev<float> dDy(dy);
      c.gpu([&] { tfe::cuda::concat_backward(dgp.data(), dDy.p(), sizes.data(), count, N, inner); });
      for (int j = 0; j < count; ++j) exact(c, fmt("dxs[%d]", j).c_str(), g[j], dg[j]);
    }
  }
}

void test_sgd() {
  for (int count : {1, 5, 33, 70})
    for (int mode = 0; mode < 3; ++mode)
      for (float wd : {0.0f, 5e-4f}) {
        if (count == 1 && wd != 0.0f) continue;
        const float mom = mode ? 0.9f : 0.0f, lr = 0.013f;
        const bool nest = mode == 2;
        const char* kind[] = {"plain", "momentum", "nesterov"};
        Case c("sgd", fmt("count=%d %s wd=%g (2 steps)", count, kind[mode], wd));
        std::vector<int64_t> sizes(count);
        for (int64_t& s : sizes) s = randint(0, 300);
        if (count >= 33) sizes[3] = 5000, sizes[20] = 0, sizes[31] = 4096, sizes[32] = 4097;
        std::vector<std::vector<float>> P(count), B(count), G(count);
        std::vector<Dev<float>> dP, dB, dG;
        dP.reserve(count), dB.reserve(count), dG.reserve(count);
        std::vector<float*> pp(count), bp(count), dpp(count), dbp(count);
        std::vector<const float*> gp(count), dgp(count);
        for (int j = 0; j < count; ++j) {
          P[j] = uniform(sizes[j]);
          B[j] = uniform(sizes[j]);  // in use from the second step on
          G[j] = uniform(sizes[j]);
          dP.emplace_back(P[j], j % 3 == 1), dB.emplace_back(B[j]), dG.emplace_back(G[j]);
          pp[j] = P[j].data(), bp[j] = mode ? B[j].data() : nullptr, gp[j] = G[j].data();
          dpp[j] = dP[j].p(), dbp[j] = mode ? dB[j].p() : nullptr, dgp[j] = dG[j].p();
        }
        for (int step = 0; step < 2; ++step) {
          tfe::cpu::sgd_step(pp.data(), bp.data(), gp.data(), sizes.data(), count, lr, mom, wd, nest);
          c.gpu([&] {
            tfe::cuda::sgd_step(dpp.data(), dbp.data(), dgp.data(), sizes.data(), count, lr, mom, wd, nest);
          });
        }
        for (int j = 0; j < count; ++j) {
          exact(c, fmt("param[%d]", j).c_str(), P[j], dP[j]);
          exact(c, fmt("momentum_buf[%d]", j).c_str(), B[j], dB[j]);
        }
      }
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--tol=", 0) == 0) {
      char op[64];
      double at, rt;
      if (std::sscanf(a.c_str() + 6, "%63[^:]:%lf:%lf", op, &at, &rt) != 3) {
        std::fprintf(stderr, "bad argument %s (want --tol=op:atol:rtol)\n", a.c_str());
        return 2;
      }
      g_tol[op] = Tol{at, rt};
    } else if (a.rfind("--only=", 0) == 0) {
      only = a.substr(7);
    } else {
      std::fprintf(stderr, "usage: %s [--tol=op:atol:rtol ...] [--only=op]\n", argv[0]);
      return 2;
    }
  }
  // The CPU kernels are deterministic for a given thread count; one thread keeps the
  // reference cheap on a shared machine.
  tfe::cpu::set_num_threads(1);
  const std::pair<const char*, void (*)()> groups[] = {
      {"relu", test_relu_add},    {"dropout", test_dropout},       {"maxpool", test_maxpool},
      {"gap", test_gap},          {"conv2d", test_conv2d},         {"linear", test_linear},
      {"batchnorm", test_batchnorm}, {"residual", test_residual},  {"tfe_head", test_tfe_head},
      {"cross_entropy", test_cross_entropy}, {"concat", test_concat}, {"sgd", test_sgd}};
  for (const auto& [name, fn] : groups)
    if (only.empty() || only == name || (only == "add" && std::string(name) == "relu")) fn();
  std::printf("%d cases: %d passed, %d failed; %lld emulated launches\n", g_pass + g_fail, g_pass,
              g_fail, emu::g_launches);
  return g_fail ? 1 : 0;
}

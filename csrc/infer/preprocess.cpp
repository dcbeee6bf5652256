// Preprocessing (see preprocess.h). Resampling is separable: out = Mh · G · Mwᵀ, where G is
// the centre square crop of the luma image and Mh, Mw are the per-axis linear maps built
// exactly as transforms._resample_matrix builds them (same float64 expressions, same
// accumulation order), so the only differences from NumPy are in the order BLAS sums a
// handful of float64 products.
#include "infer/preprocess.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "infer/model_file.h"

namespace tfe::engine {
namespace {

constexpr int kMaxSide = 1 << 15;  // 32768 pixels: far beyond a face crop, bounds sizes

int channels(tfe_pixel_format f) {
  switch (f) {
    case TFE_PIXEL_GRAY8: return 1;
    case TFE_PIXEL_RGB8:
    case TFE_PIXEL_BGR8: return 3;
    case TFE_PIXEL_RGBA8:
    case TFE_PIXEL_BGRA8: return 4;
  }
  return 0;
}

// One axis of the resampling: output i reads inputs first[i] .. first[i] + w[i].size() - 1.
struct Axis {
  std::vector<int> first;
  std::vector<std::vector<double>> w;
};

Axis resample_axis(int n_in, int n_out) {
  std::vector<double> m(static_cast<size_t>(n_out) * n_in, 0.0);
  auto at = [&](int i, int j) -> double& { return m[static_cast<size_t>(i) * n_in + j]; };
  if (n_out < n_in) {
    const double s = static_cast<double>(n_in) / n_out;
    for (int i = 0; i < n_out; ++i) {
      const double lo = static_cast<double>(i) * s, hi = static_cast<double>(i + 1) * s;
      const int j_end = std::min(n_in, static_cast<int>(std::ceil(hi)));
      for (int j = static_cast<int>(std::floor(lo)); j < j_end; ++j)
        at(i, j) = std::min(static_cast<double>(j + 1), hi) - std::max(static_cast<double>(j), lo);
    }
    for (double& v : m) v /= s;
  } else {
    const double r = static_cast<double>(n_in) / n_out;
    for (int i = 0; i < n_out; ++i) {
      const double pos = (static_cast<double>(i) + 0.5) * r - 0.5;
      const double f = std::floor(pos);
      const double t = pos - f;
      const int j0 = static_cast<int>(f);
      at(i, std::clamp(j0, 0, n_in - 1)) += 1.0 - t;
      at(i, std::clamp(j0 + 1, 0, n_in - 1)) += t;
    }
  }
  Axis a;
  a.first.resize(n_out);
  a.w.resize(n_out);
  for (int i = 0; i < n_out; ++i) {
    int lo = 0, hi = n_in - 1;
    while (lo < hi && at(i, lo) == 0.0) ++lo;
    while (hi > lo && at(i, hi) == 0.0) --hi;
    a.first[i] = lo;
    a.w[i].assign(&at(i, lo), &at(i, lo) + (hi - lo + 1));
  }
  return a;
}

// Luma of `len` pixels of one row, starting at pixel x0, as to_gray computes it.
void gray_row(double* out, const uint8_t* row, int x0, int len, tfe_pixel_format f) {
  const int c = channels(f);
  const uint8_t* p = row + static_cast<size_t>(x0) * c;
  if (c == 1) {
    for (int x = 0; x < len; ++x) out[x] = p[x];
    return;
  }
  const bool bgr = f == TFE_PIXEL_BGR8 || f == TFE_PIXEL_BGRA8;
  for (int x = 0; x < len; ++x, p += c) {
    const double r = p[bgr ? 2 : 0], g = p[1], b = p[bgr ? 0 : 2];
    out[x] = r * 0.299 + g * 0.587 + b * 0.114;
  }
}

}  // namespace

void check_image(const uint8_t* pixels, int width, int height, int stride_bytes,
                 tfe_pixel_format format) {
  const int c = channels(format);
  if (c == 0) fail(TFE_ERR_ARGUMENT, "unknown pixel format " + std::to_string(int(format)));
  if (!pixels) fail(TFE_ERR_ARGUMENT, "pixels is NULL");
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
    fail(TFE_ERR_ARGUMENT, "image size " + std::to_string(width) + "x" + std::to_string(height) +
                               " is not in 1.." + std::to_string(kMaxSide));
  if (static_cast<int64_t>(stride_bytes) < static_cast<int64_t>(width) * c)
    fail(TFE_ERR_ARGUMENT, "stride_bytes " + std::to_string(stride_bytes) +
                               " is smaller than a row (" + std::to_string(width * c) + " bytes)");
}

void resize_gray(uint8_t* out, int size, const uint8_t* pixels, int width, int height,
                 int stride_bytes, tfe_pixel_format format) {
  const int s = std::min(width, height);
  const int top = (height - s) / 2, left = (width - s) / 2;
  if (s == size) {
    // The crop is already the network's size: both axis maps are the identity (weight
    // exactly 1.0), so the general path below would return rint(luma) itself. Computed
    // directly, a 48x48 image costs about a microsecond instead of twelve (the resampling
    // matrices alone take more than the copy).
    std::vector<double> row(s);
    for (int i = 0; i < size; ++i) {
      const uint8_t* src = pixels + static_cast<size_t>(top + i) * stride_bytes;
      uint8_t* dst = out + static_cast<size_t>(i) * size;
      if (format == TFE_PIXEL_GRAY8) {
        std::copy(src + left, src + left + s, dst);
        continue;
      }
      gray_row(row.data(), src, left, s, format);
      for (int x = 0; x < s; ++x)
        dst[x] = static_cast<uint8_t>(std::clamp(std::nearbyint(row[x]), 0.0, 255.0));
    }
    return;
  }
  const Axis ah = resample_axis(s, size), aw = resample_axis(s, size);
  std::vector<double> row(s), tmp(static_cast<size_t>(size) * s);
  // tmp = Mh · G, one output row at a time; each source row is converted to luma when used.
  for (int i = 0; i < size; ++i) {
    double* t = &tmp[static_cast<size_t>(i) * s];
    std::fill(t, t + s, 0.0);
    for (size_t k = 0; k < ah.w[i].size(); ++k) {
      const int j = ah.first[i] + static_cast<int>(k);
      gray_row(row.data(), pixels + static_cast<size_t>(top + j) * stride_bytes, left, s, format);
      const double wk = ah.w[i][k];
      for (int x = 0; x < s; ++x) t[x] += wk * row[x];
    }
  }
  // out = tmp · Mwᵀ, rounded half to even (np.rint) and clamped.
  for (int i = 0; i < size; ++i) {
    const double* t = &tmp[static_cast<size_t>(i) * s];
    for (int o = 0; o < size; ++o) {
      double v = 0.0;
      for (size_t k = 0; k < aw.w[o].size(); ++k) v += t[aw.first[o] + k] * aw.w[o][k];
      v = std::nearbyint(v);
      out[static_cast<size_t>(i) * size + o] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
    }
  }
}

void normalize_pixels(float* out, const uint8_t* gray, const float* mean, const float* inv_std,
               int count) {
  for (int i = 0; i < count; ++i) {
    const float d = static_cast<float>(gray[i]) - mean[i];
    out[i] = d * inv_std[i];
  }
}

}  // namespace tfe::engine

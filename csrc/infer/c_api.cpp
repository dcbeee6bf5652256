// The extern "C" surface of libtfe (see include/tfe/tfe.h).
//
// Every entry point runs its body inside guarded(), which turns engine::Failure into its
// status, std::bad_alloc into TFE_ERR_MEMORY and anything else into TFE_ERR_INTERNAL, and
// records the message in a thread_local string: no exception crosses the C boundary.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include "ops/cpu_kernels.h"
#include "infer/graph.h"
#include "infer/model_file.h"
#include "infer/preprocess.h"
#include "tfe/tfe.h"

#ifndef TFE_VERSION
#define TFE_VERSION "unknown"
#endif

struct tfe_model {
  std::unique_ptr<tfe::engine::Model> impl;
};

namespace {

using tfe::engine::fail;
using tfe::engine::Failure;

thread_local std::string tls_error;

template <class F>
tfe_status guarded(F&& body) noexcept {
  try {
    body();
    tls_error.clear();
    return TFE_OK;
  } catch (const Failure& e) {
    try { tls_error = e.what(); } catch (...) {}
    return e.status;
  } catch (const std::bad_alloc&) {
    try { tls_error = "out of memory"; } catch (...) {}
    return TFE_ERR_MEMORY;
  } catch (const std::exception& e) {
    try { tls_error = std::string("internal error: ") + e.what(); } catch (...) {}
    return TFE_ERR_INTERNAL;
  } catch (...) {
    try { tls_error = "internal error: unknown exception"; } catch (...) {}
    return TFE_ERR_INTERNAL;
  }
}

const tfe::engine::Model& model_of(const tfe_model* m) {
  if (!m || !m->impl) fail(TFE_ERR_ARGUMENT, "model is NULL");
  return *m->impl;
}

void softmax_rows(float* p, int rows, int k) {
  for (int r = 0; r < rows; ++r) {
    float* z = p + static_cast<int64_t>(r) * k;
    float mx = z[0];
    for (int i = 1; i < k; ++i) mx = std::max(mx, z[i]);
    double sum = 0.0;
    std::vector<double> e(k);
    for (int i = 0; i < k; ++i) sum += (e[i] = std::exp(static_cast<double>(z[i]) - mx));
    for (int i = 0; i < k; ++i) z[i] = static_cast<float>(e[i] / sum);
  }
}

std::string nonfinite_logit(int image) {
  return "image " + std::to_string(image) +
         ": the model computes a non-finite logit (its weights overflow float32)";
}

void predict(const tfe::engine::Model& m, const tfe_image* images, int count, float* probs) {
  if (count < 0) fail(TFE_ERR_ARGUMENT, "count is negative");
  if (count > 0 && !images) fail(TFE_ERR_ARGUMENT, "images is NULL");
  if (!probs) fail(TFE_ERR_ARGUMENT, "probs_out is NULL");
  for (int i = 0; i < count; ++i) {
    const tfe_image& im = images[i];
    try {
      tfe::engine::check_image(im.pixels, im.width, im.height, im.stride_bytes, im.format);
    } catch (const Failure& e) {
      fail(e.status, "image " + std::to_string(i) + ": " + e.what());
    }
  }
  const int s = m.input_size();
  const size_t plane = static_cast<size_t>(s) * s;
  // Images are preprocessed and run in chunks so memory stays bounded for any count.
  constexpr int kChunk = 32;
  std::vector<uint8_t> gray(plane);
  std::vector<float> x;
  for (int i0 = 0; i0 < count; i0 += kChunk) {
    const int nb = std::min(kChunk, count - i0);
    x.resize(plane * nb);
    for (int j = 0; j < nb; ++j) {
      const tfe_image& im = images[i0 + j];
      tfe::engine::resize_gray(gray.data(), s, im.pixels, im.width, im.height, im.stride_bytes,
                               im.format);
      m.normalize(x.data() + plane * j, gray.data());
    }
    float* out = probs + static_cast<int64_t>(i0) * m.num_classes();
    m.forward(x.data(), nb, out);
    // The self-test proved the network on one input; hostile finite weights can still
    // overflow on others, and that must be an error, never NaN probabilities.
    const int k = m.num_classes();
    for (int64_t j = 0; j < int64_t{nb} * k; ++j)
      if (!std::isfinite(out[j]))
        fail(TFE_ERR_FORMAT, m.name() + ": " + nonfinite_logit(i0 + static_cast<int>(j / k)));
    softmax_rows(out, nb, m.num_classes());
  }
}

}  // namespace

extern "C" {

const char* tfe_version(void) { return TFE_VERSION; }

const char* tfe_status_string(tfe_status status) {
  switch (status) {
    case TFE_OK: return "ok";
    case TFE_ERR_IO: return "cannot read the file";
    case TFE_ERR_FORMAT: return "malformed model file";
    case TFE_ERR_VERSION: return "unsupported model file version";
    case TFE_ERR_ARGUMENT: return "invalid argument";
    case TFE_ERR_UNSUPPORTED: return "unsupported model";
    case TFE_ERR_MEMORY: return "out of memory";
    case TFE_ERR_SELFTEST: return "self-test failed";
    case TFE_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* tfe_last_error(void) { return tls_error.c_str(); }

tfe_status tfe_set_num_threads(int n) {
  return guarded([&] {
    if (n < 1 || n > tfe::cpu::kMaxThreads)
      fail(TFE_ERR_ARGUMENT, "number of threads must be between 1 and " +
                                 std::to_string(tfe::cpu::kMaxThreads));
    tfe::cpu::set_num_threads(n);
  });
}

int tfe_get_num_threads(void) { return tfe::cpu::num_threads(); }

tfe_status tfe_model_load(const char* path, tfe_model** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    if (!out) fail(TFE_ERR_ARGUMENT, "out is NULL");
    if (!path) fail(TFE_ERR_ARGUMENT, "path is NULL");
    const auto file = tfe::engine::ModelFile::read(path);
    auto m = std::make_unique<tfe_model>();
    m->impl = tfe::engine::Model::load(file);
    *out = m.release();
  });
}

namespace {
// The file this library was loaded from ("" when the system cannot say).
std::string library_file() {
#ifdef _WIN32
  HMODULE module = nullptr;
  char buf[MAX_PATH] = {0};
  if (GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                             GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                         reinterpret_cast<LPCSTR>(&tfe_default_model_path), &module) &&
      GetModuleFileNameA(module, buf, MAX_PATH) > 0)
    return buf;
  return "";
#else
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&tfe_default_model_path), &info) && info.dli_fname)
    return info.dli_fname;
  return "";
#endif
}
}  // namespace

const char* tfe_default_model_path(void) {
  // pip installs the library as tfe/lib/libtfe.so and the model as
  // tfe/default_model/ferplus-resnet18.safetensors (pyproject.toml, CMakeLists.txt).
  static const std::string path = [] {
    std::string lib = library_file();
    const auto slash = lib.find_last_of("/\\");
    std::string dir = slash == std::string::npos ? std::string(".") : lib.substr(0, slash);
    return dir + "/../default_model/ferplus-resnet18.safetensors";
  }();
  return path.c_str();
}

tfe_status tfe_model_load_default(tfe_model** out) {
  return tfe_model_load(tfe_default_model_path(), out);
}

tfe_status tfe_model_load_memory(const void* data, size_t size, tfe_model** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    if (!out) fail(TFE_ERR_ARGUMENT, "out is NULL");
    if (!data && size) fail(TFE_ERR_ARGUMENT, "data is NULL");
    const auto* p = static_cast<const uint8_t*>(data);
    auto file = tfe::engine::ModelFile::parse(std::vector<uint8_t>(p, p + size), "<memory>");
    auto m = std::make_unique<tfe_model>();
    m->impl = tfe::engine::Model::load(file);
    *out = m.release();
  });
}

void tfe_model_free(tfe_model* model) { delete model; }

int tfe_model_num_classes(const tfe_model* model) {
  return model && model->impl ? model->impl->num_classes() : 0;
}

const char* tfe_model_class_name(const tfe_model* model, int i) {
  if (!model || !model->impl || i < 0 || i >= model->impl->num_classes()) return nullptr;
  return model->impl->classes()[i].c_str();
}

int tfe_model_input_size(const tfe_model* model) {
  return model && model->impl ? model->impl->input_size() : 0;
}

const char* tfe_model_architecture(const tfe_model* model) {
  return model && model->impl ? model->impl->architecture().c_str() : "";
}

tfe_status tfe_predict(const tfe_model* model, const uint8_t* pixels, int width, int height,
                       int stride_bytes, tfe_pixel_format format, float* probs_out) {
  return guarded([&] {
    const tfe_image im{pixels, width, height, stride_bytes, format};
    predict(model_of(model), &im, 1, probs_out);
  });
}

tfe_status tfe_predict_batch(const tfe_model* model, const tfe_image* images, int count,
                             float* probs_out) {
  return guarded([&] { predict(model_of(model), images, count, probs_out); });
}

tfe_status tfe_forward(const tfe_model* model, const float* input, int count,
                       float* logits_out) {
  return guarded([&] {
    const auto& m = model_of(model);
    if (count < 0) fail(TFE_ERR_ARGUMENT, "count is negative");
    if (count > 0 && (!input || !logits_out)) fail(TFE_ERR_ARGUMENT, "input or logits_out is NULL");
    if (count > 0) m.forward(input, count, logits_out);
  });
}

tfe_status tfe_model_selftest(const tfe_model* model, float* max_abs_diff) {
  return guarded([&] {
    const auto& m = model_of(model);
    const float d = m.selftest_diff();
    if (max_abs_diff) *max_abs_diff = d;
    if (!(d <= m.selftest_atol()))
      fail(TFE_ERR_SELFTEST, tfe::engine::selftest_failure(d, m.selftest_atol()));
  });
}

}  // extern "C"

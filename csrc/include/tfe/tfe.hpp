// tfe: header-only C++ layer over the C API (tfe.h): RAII model handle, std::vector results,
// errors as tfe::Exception (thrown here, in the caller's code; the library itself never
// throws across its C boundary).
//
//   #include <tfe/tfe.hpp>
//   tfe::Model model("tfe.safetensors");                      // throws tfe::Exception
//   std::vector<float> p = model.predict(pixels, w, h, w, TFE_PIXEL_GRAY8);
//   std::cout << model.class_name(std::max_element(p.begin(), p.end()) - p.begin());
//
// Thread safety as in tfe.h: a Model may be shared by threads for predict()/selftest().
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tfe/tfe.h"

namespace tfe {

class Exception : public std::runtime_error {
 public:
  Exception(tfe_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  tfe_status status() const noexcept { return status_; }

 private:
  tfe_status status_;
};

namespace detail {
inline void check(tfe_status s) {
  if (s != TFE_OK) {
    std::string msg = tfe_last_error();
    if (msg.empty()) msg = tfe_status_string(s);
    throw Exception(s, msg);
  }
}
}  // namespace detail

// One image as the C API sees it (pixels are not owned).
using Image = tfe_image;

class Model {
 public:
  explicit Model(const std::string& path) { detail::check(tfe_model_load(path.c_str(), &m_)); }
  static Model load(const std::string& path) { return Model(path); }
  // The model that ships with tfe (tfe_default_model_path()).
  static Model load_default() { return Model(tfe_default_model_path()); }
  static Model from_memory(const void* data, size_t size) {
    Model m;
    detail::check(tfe_model_load_memory(data, size, &m.m_));
    return m;
  }

  Model(Model&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Model& operator=(Model&& o) noexcept {
    if (this != &o) {
      tfe_model_free(m_);
      m_ = std::exchange(o.m_, nullptr);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() { tfe_model_free(m_); }

  int num_classes() const { return tfe_model_num_classes(m_); }
  std::string class_name(int i) const {
    const char* s = tfe_model_class_name(m_, i);
    if (!s) throw Exception(TFE_ERR_ARGUMENT, "class index " + std::to_string(i) + " out of range");
    return s;
  }
  std::vector<std::string> class_names() const {
    std::vector<std::string> v;
    for (int i = 0; i < num_classes(); ++i) v.push_back(class_name(i));
    return v;
  }
  int input_size() const { return tfe_model_input_size(m_); }
  std::string architecture() const { return tfe_model_architecture(m_); }

  // Class probabilities of one image (any size; see tfe.h for the preprocessing).
  std::vector<float> predict(const uint8_t* pixels, int width, int height, int stride_bytes,
                             tfe_pixel_format format) const {
    std::vector<float> p(static_cast<size_t>(num_classes()));
    detail::check(tfe_predict(m_, pixels, width, height, stride_bytes, format, p.data()));
    return p;
  }
  // One probability vector per image, from a single batched forward pass.
  std::vector<std::vector<float>> predict(const std::vector<Image>& images) const {
    const size_t k = static_cast<size_t>(num_classes());
    std::vector<float> flat(k * images.size());
    detail::check(tfe_predict_batch(m_, images.data(), static_cast<int>(images.size()),
                                    flat.data()));
    std::vector<std::vector<float>> out(images.size());
    for (size_t i = 0; i < images.size(); ++i)
      out[i].assign(flat.begin() + i * k, flat.begin() + (i + 1) * k);
    return out;
  }
  // Logits of normalised input float32 [count, 1, S, S].
  std::vector<float> forward(const float* input, int count) const {
    std::vector<float> z(static_cast<size_t>(count) * num_classes());
    detail::check(tfe_forward(m_, input, count, z.data()));
    return z;
  }
  // Max |logit difference| on the stored self-test input; throws when above tolerance.
  float selftest() const {
    float d = 0.0f;
    detail::check(tfe_model_selftest(m_, &d));
    return d;
  }

  const tfe_model* get() const noexcept { return m_; }

 private:
  Model() = default;
  tfe_model* m_ = nullptr;
};

inline void set_num_threads(int n) { detail::check(tfe_set_num_threads(n)); }
inline int num_threads() { return tfe_get_num_threads(); }

}  // namespace tfe

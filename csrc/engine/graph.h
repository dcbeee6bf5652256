// The eval-mode forward of the tfe networks (DeepID, ResNet12/18, TFE), built from a model
// file's architecture JSON and run with the tfe::cpu kernels.
//
// Every layer calls the same kernel with the same arguments as the Python model in eval
// mode (conv2d + batchnorm_forward_eval + relu, residual_forward_eval for the block
// epilogue, tfe_head_forward_eval for the head), so the C++ library reproduces
// LoadedModel.logits bit for bit at the same thread count (and to ~1e-6 otherwise). BN is
// deliberately not folded into the convolutions: folding changes rounding, and the memory
// passes it would save are a small share of the time at 48x48.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/model_file.h"

namespace tfe::engine {

class Network;

// A loaded, validated model: immutable after load().
class Model {
 public:
  static std::unique_ptr<Model> load(const ModelFile& file);
  ~Model();

  int num_classes() const { return static_cast<int>(classes_.size()); }
  const std::vector<std::string>& classes() const { return classes_; }
  int input_size() const { return size_; }
  const std::string& architecture() const { return arch_name_; }

  // logits[N, K] of normalised input x[N, 1, S, S]. Thread-safe (scratch is thread_local).
  void forward(const float* x, int n, float* logits) const;
  // out[S*S] = normalised network input of a gray S x S image.
  void normalize(float* out, const uint8_t* gray) const;
  // Max |forward(selftest.input) - selftest.logits|; tolerance from the metadata.
  float selftest_diff() const;
  float selftest_atol() const { return selftest_atol_; }

 private:
  Model();
  std::string arch_name_;
  std::vector<std::string> classes_;
  int size_ = 0;
  std::vector<float> mean_, inv_std_;
  std::vector<float> selftest_input_, selftest_logits_;
  float selftest_atol_ = 1e-4f;
  std::unique_ptr<Network> net_;
};

}  // namespace tfe::engine

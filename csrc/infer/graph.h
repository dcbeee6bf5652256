// The eval-mode forward of the tfe networks (DeepID, ResNet12/18, TFE), built from a model
// file's layer list (layers.h; for older files, the list their architecture JSON describes)
// and run with the inference kernels of tfe::cpu (conv_infer).
//
// At load every eval-mode BatchNorm is folded into the convolution before it (w' = w * s,
// b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps), computed in double), the TFE
// head's BN1d into its FC, and the weights are packed once for the GEMM micro-kernel. A
// layer is then one kernel call with its epilogue fused: conv + bias + ReLU, or, closing a
// residual block, relu(conv2'(h) + shortcut) with the projection shortcut's BN folded too.
// Activations live in zero-padded maps that the next convolution reads directly.
// The 3x3 stride-1 convolutions (C >= 8) use Winograd F(2x2, 3x3) (cpu::winograd_run).
// The logits match Python's LoadedModel.logits (BN kept separate) to float rounding (a few
// 1e-7 relative); they are bit-identical for any thread count and batch size.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "infer/model_file.h"

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
  const std::string& name() const { return name_; }  // the file's, as in messages

  // logits[N, K] of normalised input x[N, 1, S, S]. Thread-safe (scratch is thread_local).
  // Images are spread over up to tfe::cpu::num_threads() threads, whole images per thread;
  // one image is split over them layer by layer in one parallel region (see Team in graph.cpp).
  void forward(const float* x, int n, float* logits) const;
  // out[S*S] = normalised network input of a gray S x S image.
  void normalize(float* out, const uint8_t* gray) const;
  // Max |forward(selftest.input) - selftest.logits| (NaN when any is NaN). load() runs it and
  // refuses the file (TFE_ERR_SELFTEST) when it exceeds selftest_atol(): 2^-10 relative to
  // max(1, max |stored logit|), a float32 rounding bound independent of the machine.
  float selftest_diff() const;
  float selftest_atol() const { return selftest_atol_; }

 private:
  Model();
  std::string arch_name_, name_;
  std::vector<std::string> classes_;
  int size_ = 0;
  std::vector<float> mean_, inv_std_;
  std::vector<float> selftest_input_, selftest_logits_;
  float selftest_atol_ = 0.0f;
  std::unique_ptr<Network> net_;
};

// The message of a failed self-test (after "<file>: " at load).
std::string selftest_failure(float diff, float tolerance);

}  // namespace tfe::engine

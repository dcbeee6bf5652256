// The layer list of a model file (metadata "layers", JSON): every layer of the network in
// the order it runs, with its kind, tensor prefix ("name"), input and hyper-parameters. It
// is written by tfe.layers.describe (python/tfe/layers.py, where the kinds and their fields
// are documented); files written before it was stored get the list their architecture JSON
// describes (layers_from_architecture, the twin of tfe.layers.from_architecture).
//
// Layers checks what every layer list must satisfy whatever network it describes (a known
// kind, inputs that come before the layer, each hyper-parameter present and in range, read
// on demand); which networks the library runs is graph.cpp's business. Problems throw
// Failure with one line "<file>: layers[i]: <problem>", the same as the Python reader's.
#pragma once
#include <string>
#include <vector>

#include "infer/model_file.h"

namespace tfe::engine {

constexpr int kMaxLayers = 4096;       // entries in a layer list
constexpr int kMaxChannels = 1 << 16;  // channels / features of a layer
constexpr int kMaxClasses = 1 << 20;   // num_classes / num_identities / out_features
constexpr int kMaxStageBlocks = 64;    // blocks per ResNet stage (architecture JSON)
constexpr int kMaxKernel = 16;         // convolution / pooling window side
constexpr int kMaxStride = 16;
constexpr int kMaxPadding = 16;

// The BatchNorm eps of every file written before the layer list existed (tfe's default).
constexpr double kDefaultEps = 1e-5;

// JSON text of the layer list that the architecture JSON `arch` describes for square inputs
// of side `size`. Checks the architecture first, failing "<file>: architecture: ..." (or
// TFE_ERR_UNSUPPORTED for an architecture this library does not run) as before layer lists.
std::string layers_from_architecture(const Json& arch, int size, const std::string& file);

class Layers {
 public:
  // Checks the list's shape: an array of 1..kMaxLayers objects, each with a known "kind" and
  // its input(s) among the layers before it (-1: the network input).
  Layers(const Json& list, std::string file);

  int size() const { return static_cast<int>(list_->items().size()); }
  const std::string& kind(int i) const { return at(i).find("kind")->str(); }
  int input(int i) const { return inputs_[i][0]; }                    // one-input kinds
  const std::vector<int>& inputs(int i) const { return inputs_[i]; }  // concat, tfe_head

  // Hyper-parameters of layer i, each failing "layers[i]: ..." when absent or out of range.
  std::string name(int i) const;  // the prefix of the layer's tensors
  int integer(int i, const char* key, int lo, int hi) const;
  bool flag(int i, const char* key) const;
  std::string text(int i, const char* key) const;
  float eps(int i) const;             // "eps": a number in (0, 1], used as float (as tfe does)
  double dropout_rate(int i) const;  // "p": a number in [0, 1)

  [[noreturn]] void fail(int i, tfe_status status, const std::string& why) const;
  const std::string& file() const { return file_; }

 private:
  const Json& at(int i) const { return list_->items()[i]; }
  const Json* list_;
  std::string file_;
  std::vector<std::vector<int>> inputs_;
};

// The "name" of an architecture JSON object ("<file>: architecture: ..." when it has none).
std::string architecture_name(const Json& arch, const std::string& file);

// "layers[j]", or "the input" for -1: how messages name a layer's input.
std::string layer_ref(int j);

}  // namespace tfe::engine

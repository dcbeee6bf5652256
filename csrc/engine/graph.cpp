// Eval-mode networks (see graph.h) and the model-level validation of a model file.
//
// Loading: the architecture JSON is checked field by field, every weight the Python
// module's state_dict would hold is read with its exact expected shape (derived from the
// architecture and the input size), and, as load_state_dict(strict=True) does, a missing or
// an unexpected tensor is an error. Shapes are inferred once for the model's input size, so
// forward() only does arithmetic.
//
// Scratch: forward() takes its activations from a thread_local, grow-only workspace (one per
// calling thread), so concurrent calls on one model share nothing mutable; the CPU kernels
// keep their own scratch thread_local as well. A workspace larger than kKeepBytes (from a big
// batch) is released after the call instead of being kept.
#include "engine/graph.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "cpu/kernels.h"
#include "engine/preprocess.h"

namespace tfe::engine {
namespace {

constexpr float kEps = 1e-5f;   // BatchNorm eps of every tfe layer (nn.BatchNorm*/TFEHead)
constexpr int kMaxInput = 512;  // input side limit: bounds the workspace of one image
constexpr int kChunk = 32;      // images per forward pass of a large batch
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
        fail(TFE_ERR_FORMAT, f_.name() + ": unexpected tensor '" + k + "' (shape " +
                                 shape_string(e.shape) + ") for this architecture");
  }

 private:
  const ModelFile& f_;
  std::set<std::string> used_;
};

[[noreturn]] void bad_arch(const std::string& file, const std::string& why) {
  fail(TFE_ERR_FORMAT, file + ": architecture: " + why);
}

int int_field(const Json& obj, const char* key, int lo, int hi, const std::string& file,
              const int* fallback = nullptr) {
  const Json* v = obj.find(key);
  if (!v) {
    if (fallback) return *fallback;
    bad_arch(file, std::string("missing \"") + key + "\"");
  }
  if (!v->is_integer() || v->integer() < lo || v->integer() > hi)
    bad_arch(file, std::string("\"") + key + "\" is not an integer in " + std::to_string(lo) +
                       ".." + std::to_string(hi));
  return static_cast<int>(v->integer());
}

std::string name_field(const Json& arch, const std::string& file) {
  if (!arch.is_object()) bad_arch(file, "not a JSON object");
  const Json* n = arch.find("name");
  if (!n || !n->is_string()) bad_arch(file, "missing \"name\"");
  return n->str();
}

void check_gray_input(const Json& arch, const std::string& file) {
  const int one = 1;
  const int c = int_field(arch, "in_channels", 1, 1 << 16, file, &one);
  if (c != 1)
    fail(TFE_ERR_UNSUPPORTED, file + ": architecture has " + std::to_string(c) +
                                  " input channels; this library runs grayscale (1) models");
}

// ---- layers ----------------------------------------------------------------------------
struct Conv {
  int C = 0, K = 0, k = 0, stride = 1, pad = 0;
  Floats w, b;  // b empty: no bias
  void load(Reader& r, const std::string& p, int c, int kk, int ks, int s, int pd, bool bias) {
    C = c, K = kk, k = ks, stride = s, pad = pd;
    w = r.get(p + ".weight", {K, C, k, k});
    if (bias) b = r.get(p + ".bias", {K});
  }
  int out(int h) const { return (h + 2 * pad - k) / stride + 1; }
  bool fits(int h) const { return h + 2 * pad >= k; }
  void run(float* y, const float* x, int n, int h, int wd) const {
    cpu::conv2d_forward(y, x, w.data(), b.empty() ? nullptr : b.data(), n, C, h, wd, K, k,
                        stride, pad);
  }
};

struct BN {
  int C = 0;
  Floats g, b, m, v;
  void load(Reader& r, const std::string& p, int c) {
    C = c;
    g = r.get(p + ".weight", {C});
    b = r.get(p + ".bias", {C});
    m = r.get(p + ".running_mean", {C});
    v = r.get(p + ".running_var", {C});
  }
  void run(float* y, const float* x, int n, int hw) const {
    cpu::batchnorm_forward_eval(y, x, g.data(), b.data(), m.data(), v.data(), n, C, hw, kEps);
  }
};

struct Linear {
  int I = 0, O = 0;
  Floats w, b;
  void load(Reader& r, const std::string& p, int i, int o) {
    I = i, O = o;
    w = r.get(p + ".weight", {O, I});
    b = r.get(p + ".bias", {O});
  }
  void run(float* y, const float* x, int n) const {
    cpu::linear_forward(y, x, w.data(), b.data(), n, I, O);
  }
};

// ---- DeepID --------------------------------------------------------------------------------
struct DeepID {
  static constexpr int kFeature = 160;
  Conv conv[4];
  Linear fc, classifier;
  int h[5] = {};        // input side, then after conv1+pool, conv2+pool, conv3+pool, conv4
  int c1 = 0;           // conv1 output side (before pooling)
  int64_t act = 0;      // largest activation per image (floats)
  int64_t pooled = 0;   // largest pool output per image (argmax entries)
  int64_t concat = 0;   // pool3 ++ conv4 features per image

  void load(Reader& r, const Json& arch, const std::string& p, int size) {
    const std::string& file = r.file().name();
    check_gray_input(arch, file);
    const int ids = int_field(arch, "num_identities", 1, 1 << 20, file);
    const int widths[5] = {1, 20, 40, 60, 80}, ks[4] = {4, 3, 3, 2};
    for (int i = 0; i < 4; ++i)
      conv[i].load(r, p + "conv" + std::to_string(i + 1), widths[i], widths[i + 1], ks[i], 1, 0,
                   true);
    h[0] = size;
    for (int i = 0; i < 4; ++i) {
      if (!conv[i].fits(h[i]))
        fail(TFE_ERR_UNSUPPORTED, file + ": input size " + std::to_string(size) +
                                      " is too small for DeepID");
      const int co = conv[i].out(h[i]);
      if (i == 0) c1 = co;
      act = std::max<int64_t>(act, int64_t{widths[i + 1]} * co * co);
      h[i + 1] = i < 3 ? (co - 2) / 2 + 1 : co;  // max-pool 2x2 stride 2 (floor)
      if (i < 3 && co < 2)
        fail(TFE_ERR_UNSUPPORTED, file + ": input size " + std::to_string(size) +
                                      " is too small for DeepID");
      if (i < 3) pooled = std::max<int64_t>(pooled, int64_t{widths[i + 1]} * h[i + 1] * h[i + 1]);
    }
    concat = int64_t{60} * h[3] * h[3] + int64_t{80} * h[4] * h[4];
    fc.load(r, p + "fc", static_cast<int>(concat), kFeature);
    classifier.load(r, p + "classifier", kFeature, ids);
  }
  int64_t scratch() const { return 2 * act + pooled + concat; }

  // feat[n, 160]: relu(fc(pool3 ++ conv4)).
  void features(float* feat, const float* x, int n, float* ws, int32_t* idx) const {
    float* a = ws;
    float* b = a + n * act;
    float* p3 = b + n * act;
    float* cat = p3 + n * pooled;
    const float* in = x;
    for (int i = 0; i < 3; ++i) {  // conv -> relu -> pool, never writing what is read
      const int co = conv[i].out(h[i]);
      conv[i].run(a, in, n, h[i], h[i]);
      cpu::relu_forward(b, a, int64_t{n} * conv[i].K * co * co);
      float* dst = i == 2 ? p3 : a;
      cpu::maxpool2d_forward(dst, idx, b, n, conv[i].K, co, co, 2, 2, 0);
      in = dst;
      std::swap(a, b);  // `in` is now b; a is free
    }
    conv[3].run(a, p3, n, h[3], h[3]);
    cpu::relu_forward(b, a, int64_t{n} * 80 * h[4] * h[4]);
    const float* parts[2] = {p3, b};
    const int sizes[2] = {60 * h[3] * h[3], 80 * h[4] * h[4]};
    cpu::concat_forward(cat, parts, sizes, 2, n, 1);
    fc.run(a, cat, n);
    cpu::relu_forward(feat, a, int64_t{n} * kFeature);
  }
};

// ---- ResNet ------------------------------------------------------------------------------
struct Block {
  Conv conv1, conv2, proj;
  BN bn1, bn2, proj_bn;
  bool projection = false;
  int h_in = 0, h_out = 0;
};

struct ResNet {
  static constexpr int kWidths[3] = {16, 32, 64};
  Conv stem;
  BN stem_bn;
  std::vector<Block> blocks;
  Linear fc;
  int feature = 0, size = 0, h_last = 0;
  int64_t act = 0;

  void load(Reader& r, const Json& arch, const std::string& p, int sz) {
    const std::string& file = r.file().name();
    check_gray_input(arch, file);
    const int classes = int_field(arch, "num_classes", 1, 1 << 20, file);
    const Json* bl = arch.find("blocks");
    if (!bl || !bl->is_array() || bl->items().empty() || bl->items().size() > 3)
      bad_arch(file, "\"blocks\" is not a list of 1 to 3 stage lengths");
    size = sz;
    stem.load(r, p + "stem_conv", 1, kWidths[0], 3, 1, 1, false);
    stem_bn.load(r, p + "stem_bn", kWidths[0]);
    int c = kWidths[0], h = sz;
    act = int64_t{c} * h * h;
    for (size_t stage = 0; stage < bl->items().size(); ++stage) {
      const Json& cnt = bl->items()[stage];
      if (!cnt.is_integer() || cnt.integer() < 0 || cnt.integer() > 64)
        bad_arch(file, "a stage length is not an integer in 0..64");
      const int width = kWidths[stage];
      for (int i = 0; i < cnt.integer(); ++i) {
        Block b;
        const std::string q = p + "blocks." + std::to_string(blocks.size()) + ".";
        b.projection = stage > 0 && i == 0;
        const int s = b.projection ? 2 : 1;
        b.conv1.load(r, q + "conv1", c, width, 3, s, 1, false);
        b.bn1.load(r, q + "bn1", width);
        b.conv2.load(r, q + "conv2", width, width, 3, 1, 1, false);
        b.bn2.load(r, q + "bn2", width);
        if (b.projection) {
          b.proj.load(r, q + "proj", c, width, 1, 2, 0, false);
          b.proj_bn.load(r, q + "proj_bn", width);
        } else if (c != width) {
          bad_arch(file, "identity block changes the width");  // unreachable with kWidths
        }
        b.h_in = h;
        b.h_out = b.conv1.out(h);
        h = b.h_out;
        c = width;
        act = std::max<int64_t>(act, int64_t{c} * h * h);
        blocks.push_back(std::move(b));
      }
    }
    feature = c;
    h_last = h;
    fc.load(r, p + "fc", feature, classes);
  }
  int64_t scratch() const { return 4 * act; }

  // feat[n, feature]: global average pool of the last stage.
  void features(float* feat, const float* x, int n, float* ws) const {
    float* cur = ws;
    float* b = cur + n * act;
    float* c = b + n * act;
    float* d = c + n * act;
    const int hw0 = size * size;
    stem.run(b, x, n, size, size);
    stem_bn.run(c, b, n, hw0);
    cpu::relu_forward(cur, c, int64_t{n} * stem.K * hw0);
    for (const Block& bk : blocks) {
      const int hi = bk.h_in, ho = bk.h_out, K = bk.conv1.K;
      bk.conv1.run(b, cur, n, hi, hi);
      bk.bn1.run(c, b, n, ho * ho);
      cpu::relu_forward(b, c, int64_t{n} * K * ho * ho);
      bk.conv2.run(c, b, n, ho, ho);
      const float* shortcut = cur;
      if (bk.projection) {
        bk.proj.run(b, cur, n, hi, hi);
        bk.proj_bn.run(d, b, n, ho * ho);
        shortcut = d;
      }
      cpu::residual_forward_eval(b, c, shortcut, bk.bn2.g.data(), bk.bn2.b.data(),
                                 bk.bn2.m.data(), bk.bn2.v.data(), n, K, ho * ho, kEps);
      std::swap(cur, b);
    }
    cpu::gap_forward(feat, cur, n, feature, h_last * h_last);
  }
};

}  // namespace

// ---- the network ---------------------------------------------------------------------------
class Network {
 public:
  enum class Kind { deepid, resnet, tfe } kind = Kind::resnet;
  DeepID id;
  ResNet em;
  // TFE head (BN1d over zi ++ ze, then FC).
  Floats hg, hb, hm, hv, hw, hbias;
  int classes = 0;

  int64_t floats_per_image() const {
    switch (kind) {
      case Kind::deepid: return id.scratch() + DeepID::kFeature;
      case Kind::resnet: return em.scratch() + em.feature;
      case Kind::tfe:
        return std::max(id.scratch(), em.scratch()) + 2 * (DeepID::kFeature + em.feature);
    }
    return 0;
  }
  int64_t ints_per_image() const { return kind == Kind::resnet ? 0 : id.pooled; }

  void forward(const float* x, int n, float* logits, float* ws, int32_t* idx) const {
    switch (kind) {
      case Kind::deepid: {
        float* feat = ws + n * id.scratch();
        id.features(feat, x, n, ws, idx);
        id.classifier.run(logits, feat, n);  // dropout is the identity in eval mode
        break;
      }
      case Kind::resnet: {
        float* feat = ws + n * em.scratch();
        em.features(feat, x, n, ws);
        em.fc.run(logits, feat, n);
        break;
      }
      case Kind::tfe: {
        float* zi = ws + n * std::max(id.scratch(), em.scratch());
        float* ze = zi + n * DeepID::kFeature;
        float* zhat = ze + n * em.feature;
        id.features(zi, x, n, ws, idx);
        em.features(ze, x, n, ws);
        cpu::tfe_head_forward_eval(logits, zhat, zi, ze, hg.data(), hb.data(), hm.data(),
                                   hv.data(), hw.data(), hbias.data(), n, DeepID::kFeature,
                                   em.feature, classes, kEps);
        break;
      }
    }
  }
};

namespace {

struct Workspace {
  std::vector<float> f;
  std::vector<int32_t> i;
};
thread_local Workspace tls_workspace;

void load_network(Network& net, Reader& r, const Json& arch, int size, std::string* name) {
  const std::string& file = r.file().name();
  *name = name_field(arch, file);
  if (*name == "deepid") {
    net.kind = Network::Kind::deepid;
    net.id.load(r, arch, "", size);
    net.classes = net.id.classifier.O;
  } else if (*name == "resnet12" || *name == "resnet18" || *name == "resnet") {
    net.kind = Network::Kind::resnet;
    net.em.load(r, arch, "", size);
    net.classes = net.em.fc.O;
  } else if (*name == "tfe") {
    net.kind = Network::Kind::tfe;
    const Json* ia = arch.find("identity");
    const Json* ea = arch.find("emotion");
    if (!ia || !ea) bad_arch(file, "tfe needs \"identity\" and \"emotion\"");
    const std::string in = name_field(*ia, file), en = name_field(*ea, file);
    if (in != "deepid")
      fail(TFE_ERR_UNSUPPORTED, file + ": tfe identity network \"" + in + "\" (expected deepid)");
    if (en != "resnet12" && en != "resnet18" && en != "resnet")
      fail(TFE_ERR_UNSUPPORTED, file + ": tfe emotion network \"" + en + "\" (expected a resnet)");
    net.id.load(r, *ia, "identity.", size);
    net.em.load(r, *ea, "emotion.", size);
    net.classes = int_field(arch, "num_classes", 1, 1 << 20, file);
    const int d = DeepID::kFeature + net.em.feature;
    net.hg = r.get("head.bn_weight", {d});
    net.hb = r.get("head.bn_bias", {d});
    net.hm = r.get("head.running_mean", {d});
    net.hv = r.get("head.running_var", {d});
    net.hw = r.get("head.weight", {net.classes, d});
    net.hbias = r.get("head.bias", {net.classes});
  } else {
    fail(TFE_ERR_UNSUPPORTED, file + ": unknown architecture \"" + *name + "\"");
  }
}

const Json& meta_json(const ModelFile& f, const char* key, Json* storage) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end())
    fail(TFE_ERR_FORMAT, f.name() + ": missing metadata \"" + key + "\"");
  *storage = Json::parse(it->second.data(), it->second.size(), f.name() + ": metadata " + key);
  return *storage;
}

}  // namespace

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
    if (!(std::isfinite(std_dev[i]) && std_dev[i] > 0.0f))
      fail(TFE_ERR_FORMAT, fn + ": preprocess.std must be finite and positive");
    if (!std::isfinite(m->mean_[i])) fail(TFE_ERR_FORMAT, fn + ": preprocess.mean is not finite");
    m->inv_std_[i] = static_cast<float>(1.0 / static_cast<double>(std_dev[i]));
  }

  // Network.
  Json arch_storage;
  const Json& arch = meta_json(file, "architecture", &arch_storage);
  m->net_ = std::make_unique<Network>();
  load_network(*m->net_, r, arch, s, &m->arch_name_);
  if (m->net_->classes != m->num_classes())
    fail(TFE_ERR_FORMAT, fn + ": " + std::to_string(m->classes_.size()) +
                             " labels for a network with " + std::to_string(m->net_->classes) +
                             " outputs");

  // Self-test.
  m->selftest_input_ = r.get("selftest.input", {1, 1, s, s});
  m->selftest_logits_ = r.get("selftest.logits", {1, m->net_->classes});
  auto st = file.metadata().find("selftest");
  if (st != file.metadata().end()) {
    const Json j = Json::parse(st->second.data(), st->second.size(), fn + ": metadata selftest");
    const Json* atol = j.find("atol");
    if (atol) {
      if (!atol->is_number() || !(atol->number() >= 0) || !std::isfinite(atol->number()))
        fail(TFE_ERR_FORMAT, fn + ": selftest.atol is not a non-negative number");
      m->selftest_atol_ = static_cast<float>(atol->number());
    }
  }
  r.check_all_used();
  return m;
}

void Model::normalize(float* out, const uint8_t* gray) const {
  normalize_pixels(out, gray, mean_.data(), inv_std_.data(), size_ * size_);
}

void Model::forward(const float* x, int n, float* logits) const {
  const Network& net = *net_;
  const int64_t per_f = net.floats_per_image(), per_i = net.ints_per_image();
  const int64_t in_per = int64_t{size_} * size_;
  Workspace& ws = tls_workspace;
  for (int n0 = 0; n0 < n; n0 += kChunk) {
    const int nb = std::min(kChunk, n - n0);
    if (ws.f.size() < static_cast<size_t>(per_f * nb)) ws.f.resize(per_f * nb);
    if (ws.i.size() < static_cast<size_t>(per_i * nb)) ws.i.resize(per_i * nb);
    net.forward(x + n0 * in_per, nb, logits + int64_t{n0} * net.classes, ws.f.data(),
                ws.i.data());
  }
  if (ws.f.capacity() * sizeof(float) + ws.i.capacity() * sizeof(int32_t) > kKeepBytes) {
    std::vector<float>().swap(ws.f);
    std::vector<int32_t>().swap(ws.i);
  }
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

// Layer lists (see layers.h): the checked view of a file's list, and the list an older
// file's architecture JSON describes.
#include "infer/layers.h"

#include <cstdio>
#include <utility>

namespace tfe::engine {
namespace {

// Kinds taking two inputs ("inputs": [a, b]); every other kind takes one ("input": a).
bool two_inputs(const std::string& kind) { return kind == "concat" || kind == "tfe_head"; }

bool known_kind(const std::string& kind) {
  static const char* const kKinds[] = {"conv2d",          "batchnorm", "relu",   "maxpool2d",
                                       "residual_block",  "dropout",   "linear", "flatten",
                                       "global_avg_pool", "concat",    "tfe_head"};
  for (const char* k : kKinds)
    if (kind == k) return true;
  return false;
}

// ---- the architecture JSON (files without a layer list) --------------------------------------
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

void check_gray_input(const Json& arch, const std::string& file) {
  const int one = 1;
  const int c = int_field(arch, "in_channels", 1, 1 << 16, file, &one);
  if (c != 1)
    fail(TFE_ERR_UNSUPPORTED, file + ": architecture has " + std::to_string(c) +
                                  " input channels; this library runs grayscale (1) models");
}

bool is_resnet(const std::string& name) {
  return name == "resnet12" || name == "resnet18" || name == "resnet";
}

// Appends layers as JSON objects; each returns its index. Names are made of the fixed
// prefixes and field names below, so they need no escaping.
class ListWriter {
 public:
  int add(const std::string& fields) {
    text_ += (count_ ? ",{" : "{") + fields + "}";
    return count_++;
  }
  // "kind" and the input: the previous layer unless given.
  std::string head(const char* kind, int input = -2) const {
    return std::string("\"kind\":\"") + kind + "\",\"input\":" +
           std::to_string(input == -2 ? count_ - 1 : input);
  }
  std::string text() const { return "[" + text_ + "]"; }

 private:
  std::string text_;
  int count_ = 0;
};

// ,"key":value
std::string field(const char* key, const std::string& json) {
  return std::string(",\"") + key + "\":" + json;
}
std::string str(const char* key, const std::string& v) { return field(key, "\"" + v + "\""); }
std::string num(const char* key, int64_t v) { return field(key, std::to_string(v)); }
std::string boolean(const char* key, bool v) { return field(key, v ? "true" : "false"); }
std::string eps_field() {
  char buf[32];
  std::snprintf(buf, sizeof buf, ",\"eps\":%.17g", kDefaultEps);
  return buf;
}

int conv(ListWriter& w, const std::string& name, int cin, int cout, int k, int s, int p, bool bias,
         int input = -2) {
  return w.add(w.head("conv2d", input) + str("name", name) + num("in_channels", cin) +
               num("out_channels", cout) + num("kernel", k) + num("stride", s) + num("padding", p) +
               boolean("bias", bias));
}

int linear(ListWriter& w, const std::string& name, int64_t in, int out, int input = -2) {
  return w.add(w.head("linear", input) + str("name", name) + num("in_features", in) +
               num("out_features", out) + boolean("bias", true));
}

// DeepID (python/tfe/models/deepid.py); returns the index of its 160-d feature (the ReLU
// after fc), which the TFE head reads.
int deepid(ListWriter& w, const Json& arch, const std::string& p, int size, int input,
           const std::string& file) {
  check_gray_input(arch, file);
  const int ids = int_field(arch, "num_identities", 1, kMaxClasses, file);
  const Json* dropout = arch.find("dropout");
  if (dropout && !(dropout->is_number() && dropout->number() >= 0 && dropout->number() < 1))
    bad_arch(file, "\"dropout\" is not a number in [0, 1)");
  const int widths[5] = {1, 20, 40, 60, 80}, ks[4] = {4, 3, 3, 2};
  int h = size, pool3 = -1, conv4 = -1;
  for (int i = 0; i < 4; ++i) {
    const int co = h - ks[i] + 1;
    if (co < (i < 3 ? 2 : 1))
      fail(TFE_ERR_UNSUPPORTED,
           file + ": input size " + std::to_string(size) + " is too small for DeepID");
    conv(w, p + "conv" + std::to_string(i + 1), widths[i], widths[i + 1], ks[i], 1, 0, true,
         i == 0 ? input : -2);
    conv4 = w.add(w.head("relu"));
    if (i < 3) pool3 = w.add(w.head("maxpool2d") + num("kernel", 2) + num("stride", 2));
    h = i < 3 ? co / 2 : co;
  }
  const int f3 = w.add(w.head("flatten", pool3)), f4 = w.add(w.head("flatten", conv4));
  const int cat = w.add(std::string("\"kind\":\"concat\",\"inputs\":[") + std::to_string(f3) +
                        "," + std::to_string(f4) + "]");
  // h is conv4's side now; pool3's is h + 1.
  const int64_t concat = int64_t{widths[3]} * (h + 1) * (h + 1) + int64_t{widths[4]} * h * h;
  linear(w, p + "fc", concat, 160, cat);
  const int feature = w.add(w.head("relu"));
  char rate[40];
  std::snprintf(rate, sizeof rate, ",\"p\":%.17g", dropout ? dropout->number() : 0.4);
  w.add(w.head("dropout") + rate);
  linear(w, p + "classifier", 160, ids);
  return feature;
}

// ResNet (python/tfe/models/resnet.py); returns the index of its global average pool (the
// emotion feature) and sets *classes and *feature_dim.
int resnet(ListWriter& w, const Json& arch, const std::string& p, int input,
           const std::string& file, int* classes, int* feature_dim) {
  static const int kWidths[3] = {16, 32, 64};
  check_gray_input(arch, file);
  *classes = int_field(arch, "num_classes", 1, kMaxClasses, file);
  const Json* bl = arch.find("blocks");
  if (!bl || !bl->is_array() || bl->items().empty() || bl->items().size() > 3)
    bad_arch(file, "\"blocks\" is not a list of 1 to 3 stage lengths");
  for (const Json& cnt : bl->items())
    if (!cnt.is_integer() || cnt.integer() < 0 || cnt.integer() > kMaxStageBlocks)
      bad_arch(file, "a stage length is not an integer in 0.." + std::to_string(kMaxStageBlocks));
  conv(w, p + "stem_conv", 1, kWidths[0], 3, 1, 1, false, input);
  w.add(w.head("batchnorm") + str("name", p + "stem_bn") + num("channels", kWidths[0]) +
        eps_field());
  w.add(w.head("relu"));
  int c = kWidths[0], n = 0;
  for (size_t stage = 0; stage < bl->items().size(); ++stage)
    for (int i = 0; i < bl->items()[stage].integer(); ++i, ++n) {
      const bool projection = stage > 0 && i == 0;
      w.add(w.head("residual_block") + str("name", p + "blocks." + std::to_string(n)) +
            num("in_channels", c) + num("out_channels", kWidths[stage]) + num("kernel", 3) +
            num("stride", projection ? 2 : 1) + num("padding", 1) +
            str("shortcut", projection ? "projection" : "identity") + eps_field());
      c = kWidths[stage];
    }
  const int pool = w.add(w.head("global_avg_pool"));
  linear(w, p + "fc", c, *classes);
  *feature_dim = c;
  return pool;
}

}  // namespace

std::string architecture_name(const Json& arch, const std::string& file) {
  if (!arch.is_object()) bad_arch(file, "not a JSON object");
  const Json* n = arch.find("name");
  if (!n || !n->is_string()) bad_arch(file, "missing \"name\"");
  return n->str();
}

std::string layers_from_architecture(const Json& arch, int size, const std::string& file) {
  const std::string name = architecture_name(arch, file);
  ListWriter w;
  int classes = 0, feature = 0;
  if (name == "deepid") {
    deepid(w, arch, "", size, -1, file);
  } else if (is_resnet(name)) {
    resnet(w, arch, "", -1, file, &classes, &feature);
  } else if (name == "tfe") {
    const Json* ia = arch.find("identity");
    const Json* ea = arch.find("emotion");
    if (!ia || !ea) bad_arch(file, "tfe needs \"identity\" and \"emotion\"");
    const std::string in = architecture_name(*ia, file), en = architecture_name(*ea, file);
    if (in != "deepid")
      fail(TFE_ERR_UNSUPPORTED,
           file + ": tfe identity network \"" + printable(in) + "\" (expected deepid)");
    if (!is_resnet(en))
      fail(TFE_ERR_UNSUPPORTED,
           file + ": tfe emotion network \"" + printable(en) + "\" (expected a resnet)");
    const int zi = deepid(w, *ia, "identity.", size, -1, file);
    const int ze = resnet(w, *ea, "emotion.", -1, file, &classes, &feature);
    classes = int_field(arch, "num_classes", 1, kMaxClasses, file);
    w.add(std::string("\"kind\":\"tfe_head\",\"inputs\":[") + std::to_string(zi) + "," +
          std::to_string(ze) + "]" + str("name", "head") + num("identity_dim", 160) +
          num("emotion_dim", feature) + num("num_classes", classes) + eps_field());
  } else {
    fail(TFE_ERR_UNSUPPORTED, file + ": unknown architecture \"" + printable(name) + "\"");
  }
  return w.text();
}

// ---- Layers ------------------------------------------------------------------------------------
std::string layer_ref(int j) { return j < 0 ? "the input" : "layers[" + std::to_string(j) + "]"; }

Layers::Layers(const Json& list, std::string file) : list_(&list), file_(std::move(file)) {
  if (!list.is_array() || list.items().empty() || list.items().size() > kMaxLayers)
    engine::fail(TFE_ERR_FORMAT,
                 file_ + ": layers: not a list of 1 to " + std::to_string(kMaxLayers) + " layers");
  for (int i = 0; i < size(); ++i) {
    const Json& l = at(i);
    if (!l.is_object()) fail(i, TFE_ERR_FORMAT, "not a JSON object");
    const Json* k = l.find("kind");
    if (!k || !k->is_string()) fail(i, TFE_ERR_FORMAT, "missing \"kind\"");
    if (!known_kind(k->str()))
      fail(i, TFE_ERR_FORMAT, "unknown kind \"" + printable(k->str()) + "\"");
    const std::string range = " in -1.." + std::to_string(i - 1);
    auto earlier = [&](const Json* v) {
      return v && v->is_integer() && v->integer() >= -1 && v->integer() < i;
    };
    std::vector<int> in;
    if (two_inputs(k->str())) {
      const Json* v = l.find("inputs");
      if (!v || !v->is_array() || v->items().size() != 2 || !earlier(&v->items()[0]) ||
          !earlier(&v->items()[1]))
        fail(i, TFE_ERR_FORMAT, "\"inputs\" is not a list of two integers" + range);
      for (const Json& j : v->items()) in.push_back(static_cast<int>(j.integer()));
    } else {
      const Json* v = l.find("input");
      if (v && !earlier(v)) fail(i, TFE_ERR_FORMAT, "\"input\" is not an integer" + range);
      in.push_back(v ? static_cast<int>(v->integer()) : i - 1);
    }
    inputs_.push_back(std::move(in));
  }
}

void Layers::fail(int i, tfe_status status, const std::string& why) const {
  engine::fail(status, file_ + ": layers[" + std::to_string(i) + "]: " + why);
}

std::string Layers::name(int i) const { return text(i, "name"); }

std::string Layers::text(int i, const char* key) const {
  const Json* v = at(i).find(key);
  if (!v || !v->is_string())
    fail(i, TFE_ERR_FORMAT, std::string("\"") + key + "\" is not a string");
  return v->str();
}

int Layers::integer(int i, const char* key, int lo, int hi) const {
  const Json* v = at(i).find(key);
  if (!v || !v->is_integer() || v->integer() < lo || v->integer() > hi)
    fail(i, TFE_ERR_FORMAT, std::string("\"") + key + "\" is not an integer in " +
                                std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(v->integer());
}

bool Layers::flag(int i, const char* key) const {
  const Json* v = at(i).find(key);
  if (!v || !v->is_bool())
    fail(i, TFE_ERR_FORMAT, std::string("\"") + key + "\" is not true or false");
  return v->boolean();
}

float Layers::eps(int i) const {
  const Json* v = at(i).find("eps");
  if (!v || !v->is_number() || !(v->number() > 0 && v->number() <= 1))
    fail(i, TFE_ERR_FORMAT, "\"eps\" is not a number in (0, 1]");
  return static_cast<float>(v->number());
}

double Layers::dropout_rate(int i) const {
  const Json* v = at(i).find("p");
  if (!v || !v->is_number() || !(v->number() >= 0 && v->number() < 1))
    fail(i, TFE_ERR_FORMAT, "\"p\" is not a number in [0, 1)");
  return v->number();
}

}  // namespace tfe::engine

// Reading tfe model files (.safetensors with tfe metadata) as UNTRUSTED input.
//
// Layout: 8-byte little-endian header length n, n bytes of JSON header (tensor name ->
// {dtype, shape, data_offsets}, plus "__metadata__" with string values), then the data
// section. Every length and offset is bounds-checked before use, the header is limited to
// kMaxHeaderBytes, the JSON is parsed by the small strict parser below (RFC 8259: no
// trailing commas, no comments, no duplicate keys, valid UTF-8, nesting depth limited), and
// each tensor's byte size must equal numel * itemsize with its range inside the data section,
// and the ranges must tile the data section exactly (no overlap, no gap, nothing after them).
// The Python reader (python/tfe/model_reader.py) applies the same checks in the same order
// with the same messages and limits (tests/test_model_file_errors.py keeps them in step).
// Problems throw engine::Failure(TFE_ERR_FORMAT or TFE_ERR_VERSION) naming the problem.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tfe/tfe.h"

namespace tfe::engine {

// The one exception type inside the engine; c_api.cpp turns it into a status + message.
struct Failure : std::runtime_error {
  Failure(tfe_status s, const std::string& msg) : std::runtime_error(msg), status(s) {}
  tfe_status status;
};
[[noreturn]] void fail(tfe_status status, const std::string& msg);

// ---- JSON ------------------------------------------------------------------------------
class Json {
 public:
  enum class Type { null, boolean, number, string, array, object };

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::null; }
  bool is_bool() const { return type_ == Type::boolean; }
  bool is_number() const { return type_ == Type::number; }
  bool is_string() const { return type_ == Type::string; }
  bool is_array() const { return type_ == Type::array; }
  bool is_object() const { return type_ == Type::object; }

  bool boolean() const { return bool_; }
  double number() const { return number_; }
  // True when the literal was an integer (no fraction/exponent) that fits in int64.
  bool is_integer() const { return type_ == Type::number && is_int_; }
  int64_t integer() const { return int_; }
  const std::string& str() const { return str_; }
  const std::vector<Json>& items() const { return items_; }
  // Object members in file order (keys are unique: duplicates are rejected).
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }
  const Json* find(const std::string& key) const;  // nullptr when absent or not an object

  // Parses exactly one JSON value from [text, text + size) (surrounding whitespace allowed).
  // Throws Failure(TFE_ERR_FORMAT, "<what>: <problem> at byte <i>").
  static Json parse(const char* text, size_t size, const std::string& what);

 private:
  friend class JsonParser;
  Type type_ = Type::null;
  bool bool_ = false;
  bool is_int_ = false;
  double number_ = 0.0;
  int64_t int_ = 0;
  std::string str_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

// ---- safetensors ---------------------------------------------------------------------------
enum class DType { f32, f64, i64, i32, u8 };

struct TensorEntry {
  DType dtype;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  size_t begin = 0, end = 0;  // byte range inside the data section
};

class ModelFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
  static constexpr uint64_t kMaxFileBytes = 4ull << 30;  // far above any model; bounds memory
  static constexpr int kMaxRank = 8;
  static constexpr uint64_t kMaxNumel = uint64_t{1} << 40;  // per dimension and per tensor

  // Reads and validates the container (not the model semantics). Throws Failure:
  // TFE_ERR_IO when the file cannot be read, TFE_ERR_FORMAT / TFE_ERR_VERSION otherwise.
  static ModelFile read(const std::string& path);
  static ModelFile parse(std::vector<uint8_t> bytes, const std::string& name);

  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& name() const { return name_; }

  // Float32 copy of tensor `key`, which must exist with dtype F32, exactly `shape` and only
  // finite values (Failure(TFE_ERR_FORMAT) naming the tensor otherwise).
  std::vector<float> floats(const std::string& key, const std::vector<int64_t>& shape) const;
  const TensorEntry& entry(const std::string& key) const;  // Failure when missing

 private:
  std::string name_;
  std::vector<uint8_t> bytes_;
  size_t data_begin_ = 0;
  std::map<std::string, TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

std::string shape_string(const std::vector<int64_t>& shape);
// Text from the file, fit for a one-line message: control bytes as \xNN, at most kMaxShown
// bytes (cut at a UTF-8 character boundary, then "...").
std::string printable(const std::string& s);
constexpr size_t kMaxShown = 64;

}  // namespace tfe::engine

// Strict JSON parser and untrusted safetensors reader (see model_file.h).
//
// Why our own JSON parser: the library must not depend on a JSON package, and the header
// is hostile input, so the parser is small enough to audit: recursive descent over a
// bounded buffer, every read guarded by `pos < end`, nesting depth capped so a header of
// "[[[[..." cannot exhaust the stack, numbers parsed with std::from_chars (no locale).
#include "infer/model_file.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <tuple>

namespace tfe::engine {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "model files are little-endian; a big-endian port must byte-swap tensors");

void fail(tfe_status status, const std::string& msg) { throw Failure(status, msg); }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string printable(const std::string& s) {
  size_t n = s.size();
  if (n > kMaxShown) {
    n = kMaxShown;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // not mid-character
  }
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return n < s.size() ? out + "..." : out;
}

// ---- JSON ------------------------------------------------------------------------------
const Json* Json::find(const std::string& key) const {
  if (type_ != Type::object) return nullptr;
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

class JsonParser {
 public:
  static constexpr int kMaxDepth = 64;

  JsonParser(const char* text, size_t size, const std::string& what)
      : p_(reinterpret_cast<const unsigned char*>(text)), n_(size), what_(what) {}

  Json parse_document() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (i_ != n_) error("unexpected characters after the JSON value");
    return v;
  }

 private:
  const unsigned char* p_;
  size_t n_;
  size_t i_ = 0;
  const std::string& what_;

  [[noreturn]] void error(const std::string& why) const {
    fail(TFE_ERR_FORMAT, what_ + ": invalid JSON (" + why + " at byte " + std::to_string(i_) + ")");
  }
  bool at_end() const { return i_ >= n_; }
  unsigned char peek() const { return at_end() ? 0 : p_[i_]; }
  void skip_ws() {
    while (!at_end() && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }
  void expect_literal(const char* lit) {
    const size_t len = std::strlen(lit);
    if (n_ - i_ < len || std::memcmp(p_ + i_, lit, len) != 0) error("invalid literal");
    i_ += len;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than " + std::to_string(kMaxDepth));
    if (at_end()) error("unexpected end of input");
    Json v;
    switch (peek()) {
      case '{': v.type_ = Json::Type::object; object(v, depth); break;
      case '[': v.type_ = Json::Type::array; array(v, depth); break;
      case '"': v.type_ = Json::Type::string; v.str_ = string(); break;
      case 't': expect_literal("true"); v.type_ = Json::Type::boolean; v.bool_ = true; break;
      case 'f': expect_literal("false"); v.type_ = Json::Type::boolean; break;
      case 'n': expect_literal("null"); break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          number(v);
        } else {
          error("unexpected character");
        }
    }
    return v;
  }

  void object(Json& v, int depth) {
    ++i_;  // '{'
    skip_ws();
    if (peek() == '}') { ++i_; return; }
    std::set<std::string> seen;
    for (;;) {
      skip_ws();
      if (peek() != '"') error("expected a string key");
      std::string key = string();
      if (!seen.insert(key).second) error("duplicate key \"" + printable(key) + "\"");
      skip_ws();
      if (peek() != ':') error("expected ':'");
      ++i_;
      skip_ws();
      Json member = value(depth + 1);
      v.members_.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      if (peek() == '}') { ++i_; return; }
      error("expected ',' or '}'");
    }
  }

  void array(Json& v, int depth) {
    ++i_;  // '['
    skip_ws();
    if (peek() == ']') { ++i_; return; }
    for (;;) {
      skip_ws();
      v.items_.push_back(value(depth + 1));
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      if (peek() == ']') { ++i_; return; }
      error("expected ',' or ']'");
    }
  }

  unsigned hex4() {
    if (n_ - i_ < 4) error("truncated \\u escape");
    unsigned u = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = p_[i_++];
      u <<= 4;
      if (c >= '0' && c <= '9') u |= c - '0';
      else if (c >= 'a' && c <= 'f') u |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') u |= c - 'A' + 10;
      else error("bad hex digit in \\u escape");
    }
    return u;
  }

  static void put_utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // One raw UTF-8 sequence starting at p_[i_] (>= 0x80), validated (no overlongs, no
  // surrogates, <= U+10FFFF) and appended.
  void utf8_sequence(std::string& s) {
    const unsigned char c = p_[i_];
    int len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else error("invalid UTF-8");
    if (n_ - i_ < static_cast<size_t>(len)) error("truncated UTF-8 sequence");
    for (int k = 1; k < len; ++k) {
      const unsigned char d = p_[i_ + k];
      if ((d & 0xC0) != 0x80) error("invalid UTF-8");
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      error("invalid UTF-8");
    s.append(reinterpret_cast<const char*>(p_ + i_), len);
    i_ += len;
  }

  std::string string() {
    ++i_;  // opening quote
    std::string s;
    for (;;) {
      if (at_end()) error("unterminated string");
      const unsigned char c = p_[i_];
      if (c == '"') { ++i_; return s; }
      if (c < 0x20) error("control character in string");
      if (c >= 0x80) { utf8_sequence(s); continue; }
      if (c != '\\') { s += static_cast<char>(c); ++i_; continue; }
      ++i_;
      if (at_end()) error("unterminated escape");
      const unsigned char e = p_[i_++];
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) error("unpaired low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - i_ < 2 || p_[i_] != '\\' || p_[i_ + 1] != 'u') error("unpaired high surrogate");
            i_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("unpaired high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(s, cp);
          break;
        }
        default: error("invalid escape");
      }
    }
  }

  void number(Json& v) {
    const size_t start = i_;
    bool integral = true;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++i_;
    } else {
      error("invalid number");
    }
    if (peek() == '.') {
      integral = false;
      ++i_;
      if (!(peek() >= '0' && peek() <= '9')) error("invalid number");
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!(peek() >= '0' && peek() <= '9')) error("invalid number");
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    const char* b = reinterpret_cast<const char*>(p_ + start);
    const char* e = reinterpret_cast<const char*>(p_ + i_);
    v.type_ = Json::Type::number;
    auto r = std::from_chars(b, e, v.number_);
    if (r.ec == std::errc::result_out_of_range) {
      error("number out of range");
    } else if (r.ec != std::errc() || r.ptr != e) {
      error("invalid number");
    }
    if (integral) {
      int64_t iv = 0;
      auto ri = std::from_chars(b, e, iv);
      if (ri.ec == std::errc() && ri.ptr == e) {
        v.is_int_ = true;
        v.int_ = iv;
      }
    }
  }
};

Json Json::parse(const char* text, size_t size, const std::string& what) {
  return JsonParser(text, size, what).parse_document();
}

// ---- safetensors ---------------------------------------------------------------------------
namespace {

struct DTypeInfo {
  const char* code;
  DType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {{"F32", DType::f32, 4}, {"F64", DType::f64, 8},
                                 {"I64", DType::i64, 8}, {"I32", DType::i32, 4},
                                 {"U8", DType::u8, 1}};

size_t itemsize(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.size;
  return 0;
}
const char* dtype_code(DType t) {
  for (const auto& d : kDTypes)
    if (d.dtype == t) return d.code;
  return "?";
}

// A non-negative JSON integer (int64), or Failure naming `what`.
uint64_t non_negative(const Json& v, const std::string& what) {
  if (!v.is_integer() || v.integer() < 0) fail(TFE_ERR_FORMAT, what + " is not a non-negative integer");
  return static_cast<uint64_t>(v.integer());
}

}  // namespace

ModelFile ModelFile::read(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(TFE_ERR_IO, path + ": cannot open (" + std::strerror(errno) + ")");
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  for (;;) {
    const size_t got = std::fread(chunk, 1, sizeof chunk, f);
    if (got > 0) {
      if (bytes.size() + got > kMaxFileBytes) {
        std::fclose(f);
        fail(TFE_ERR_FORMAT, path + ": file larger than 4 GiB, not a tfe model file");
      }
      bytes.insert(bytes.end(), chunk, chunk + got);
    }
    if (got < sizeof chunk) break;
  }
  if (std::ferror(f)) {
    const int e = errno;
    std::fclose(f);
    fail(TFE_ERR_IO, path + ": cannot read (" + std::strerror(e) + ")");
  }
  std::fclose(f);
  return parse(std::move(bytes), path);
}

ModelFile ModelFile::parse(std::vector<uint8_t> bytes, const std::string& name) {
  ModelFile mf;
  mf.name_ = name;
  const std::string& who = mf.name_;
  auto bad = [&](const std::string& why) { fail(TFE_ERR_FORMAT, who + ": " + why); };

  const size_t size = bytes.size();
  if (size < 8) bad("truncated (" + std::to_string(size) + " bytes, no 8-byte header length)");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | bytes[k];
  if (n > kMaxHeaderBytes)
    bad("header length " + std::to_string(n) + " exceeds the limit of " +
        std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > size - 8)
    bad("truncated: header length " + std::to_string(n) + " exceeds the file (" +
        std::to_string(size) + " bytes)");
  if (n < 2) bad("header length " + std::to_string(n) + " is too small for a JSON object");

  const Json header =
      Json::parse(reinterpret_cast<const char*>(bytes.data()) + 8, n, who + ": header");
  if (!header.is_object()) bad("header is not a JSON object");
  mf.data_begin_ = 8 + static_cast<size_t>(n);
  const size_t data_size = size - mf.data_begin_;

  bool have_meta = false;
  for (const auto& [key, val] : header.members()) {
    if (key == "__metadata__") {
      have_meta = true;
      if (val.is_null()) continue;
      if (!val.is_object()) bad("__metadata__ is not an object");
      for (const auto& [mk, mv] : val.members()) {
        if (!mv.is_string()) bad("__metadata__[\"" + printable(mk) + "\"] is not a string");
        mf.metadata_[mk] = mv.str();
      }
      continue;
    }
    const std::string t = "tensor '" + printable(key) + "'";
    if (!val.is_object()) bad(t + ": entry is not an object");
    const Json* dt = val.find("dtype");
    const Json* sh = val.find("shape");
    const Json* off = val.find("data_offsets");
    if (!dt || !sh || !off || val.members().size() != 3)
      bad(t + ": entry must have exactly dtype, shape and data_offsets");
    if (!dt->is_string()) bad(t + ": dtype is not a string");
    TensorEntry e{};
    bool known = false;
    for (const auto& d : kDTypes)
      if (dt->str() == d.code) { e.dtype = d.dtype; known = true; }
    if (!known) bad(t + ": unsupported dtype \"" + printable(dt->str()) + "\"");
    if (!sh->is_array()) bad(t + ": shape is not an array");
    if (sh->items().size() > static_cast<size_t>(kMaxRank))
      bad(t + ": rank " + std::to_string(sh->items().size()) + " exceeds " + std::to_string(kMaxRank));
    uint64_t numel = 1;
    for (const Json& d : sh->items()) {
      const uint64_t dim = non_negative(d, who + ": " + t + ": a shape entry");
      if (dim > kMaxNumel || __builtin_mul_overflow(numel, dim, &numel) || numel > kMaxNumel)
        bad(t + ": shape " + std::to_string(dim) + "... is too large");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!off->is_array() || off->items().size() != 2) bad(t + ": data_offsets is not [begin, end]");
    const uint64_t b = non_negative(off->items()[0], who + ": " + t + ": data_offsets[0]");
    const uint64_t en = non_negative(off->items()[1], who + ": " + t + ": data_offsets[1]");
    if (b > en || en > data_size)
      bad(t + ": offsets [" + std::to_string(b) + ", " + std::to_string(en) +
          "] outside the data section (" + std::to_string(data_size) + " bytes)");
    const uint64_t nbytes = numel * itemsize(e.dtype);  // numel <= kMaxNumel: no overflow
    if (en - b != nbytes)
      bad(t + ": " + std::to_string(en - b) + " bytes do not hold " + dtype_code(e.dtype) +
          " shape " + shape_string(e.shape) + " (" + std::to_string(nbytes) + " bytes)");
    e.numel = static_cast<int64_t>(numel);
    e.begin = static_cast<size_t>(b);
    e.end = static_cast<size_t>(en);
    mf.tensors_.emplace(key, std::move(e));
  }

  // The ranges must tile the data section, as the safetensors format requires: an overlap
  // would let one stored byte be two weights, a gap or a tail hides bytes that nothing reads.
  std::vector<std::tuple<size_t, size_t, const std::string*>> ranges;
  for (const auto& [key, e] : mf.tensors_) ranges.emplace_back(e.begin, e.end, &key);
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a), *std::get<2>(a)) <
           std::tie(std::get<0>(b), std::get<1>(b), *std::get<2>(b));
  });
  size_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [b, en, key] : ranges) {
    const std::string t = "tensor '" + printable(*key) + "'";
    const std::string where = "offsets [" + std::to_string(b) + ", " + std::to_string(en) + "]";
    if (b < covered)
      bad(t + ": " + where + " overlap tensor '" + printable(*previous) + "'");
    if (b > covered)
      bad(t + ": " + where + " leave a gap (bytes " + std::to_string(covered) + " to " +
          std::to_string(b) + " of the data section belong to no tensor)");
    covered = en;
    previous = key;
  }
  if (covered != data_size)
    bad("the data section has " + std::to_string(data_size - covered) +
        " bytes after the last tensor");

  auto fmt = mf.metadata_.find("format");
  if (!have_meta || fmt == mf.metadata_.end())
    bad("not a tfe model file (no \"format\" in __metadata__)");
  // "tfe-2": a file whose layer list differs from what its architecture JSON describes (see
  // python/tfe/modelfile.py, format_of), which a "tfe-1" reader would run wrongly.
  if (fmt->second != "tfe-1" && fmt->second != "tfe-2") {
    const std::string shown = printable(fmt->second);
    if (fmt->second.rfind("tfe-", 0) == 0)
      fail(TFE_ERR_VERSION, who + ": model file format \"" + shown +
                                "\" is not supported by this library (it reads \"tfe-1\" and "
                                "\"tfe-2\")");
    bad("not a tfe model file (format \"" + shown + "\", expected \"tfe-1\" or \"tfe-2\")");
  }
  mf.bytes_ = std::move(bytes);
  return mf;
}

const TensorEntry& ModelFile::entry(const std::string& key) const {
  auto it = tensors_.find(key);
  if (it == tensors_.end())
    fail(TFE_ERR_FORMAT, name_ + ": missing tensor '" + printable(key) + "'");
  return it->second;
}

std::vector<float> ModelFile::floats(const std::string& key,
                                     const std::vector<int64_t>& shape) const {
  const TensorEntry& e = entry(key);
  if (e.dtype != DType::f32)
    fail(TFE_ERR_FORMAT, name_ + ": tensor '" + key + "' has dtype " + dtype_code(e.dtype) +
                             ", expected F32");
  if (e.shape != shape)
    fail(TFE_ERR_FORMAT, name_ + ": tensor '" + key + "' has shape " + shape_string(e.shape) +
                             ", expected " + shape_string(shape));
  std::vector<float> out(static_cast<size_t>(e.numel));
  // memcpy, not a cast: the data section need not be 4-byte aligned.
  if (e.numel) std::memcpy(out.data(), bytes_.data() + data_begin_ + e.begin, e.end - e.begin);
  for (size_t i = 0; i < out.size(); ++i)
    if (!std::isfinite(out[i]))
      fail(TFE_ERR_FORMAT, name_ + ": tensor '" + key + "' holds a non-finite value (" +
                               (std::isnan(out[i]) ? "NaN" : "infinity") + ") at index " +
                               std::to_string(i));
  return out;
}

}  // namespace tfe::engine

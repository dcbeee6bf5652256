// Mutation fuzzer of the model-file load path of libtfe (tfe_model_load_memory: container,
// JSON header, architecture, tensors, graph building and the self-test), meant to be built
// with -fsanitize=address,undefined -fno-sanitize-recover=all so that any memory error or
// undefined behaviour aborts the run (tests/test_model_file_fuzz.py builds and runs it).
//
//   model_file_fuzz [--seed S] [--inputs N] [--seconds T] [--crash-dir DIR] SEED_FILE...
//
// Each input is a seed file (model files written by tfe) with 1 to 4 mutations, chosen from
// a deterministic generator (--seed): structure-aware ones (the header length field; a
// number of the header: offsets, shapes, num_classes, input size, stage lengths; a dtype; an
// architecture name; JSON punctuation, deep nesting, escapes and bad UTF-8 inserted; header
// ranges deleted or duplicated; two numbers swapped, which overlaps tensors; a weight set to
// NaN, infinity or a huge value) and plain byte flips, cuts and extensions; after a header
// edit the length field is usually fixed up so the parse goes deeper. A load must return a
// status; a refusal must come with a one-line message; an accepted model must predict
// probabilities that are finite and sum to 1, or, when its weights overflow float32 on the
// image, refuse with TFE_ERR_FORMAT and a one-line message. A failed check prints the input's
// number and writes the input to the crash folder (as does a sanitizer abort, through its death
// callback), then exits 1. The summary: inputs, accepted, refusals by status, crashes.
#include <sanitizer/common_interface_defs.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tfe/tfe.h"

namespace {

using Bytes = std::vector<uint8_t>;

std::mt19937_64 rng;
const Bytes* current = nullptr;  // the input being loaded, for the death callback
uint64_t current_index = 0;
std::string crash_dir = ".";

uint64_t below(uint64_t n) { return n ? rng() % n : 0; }

void save_current(const char* why) {
  if (!current) return;
  const std::string path = crash_dir + "/crash-" + std::to_string(current_index) + ".safetensors";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(current->data(), 1, current->size(), f);
    std::fclose(f);
  }
  std::fprintf(stderr, "model_file_fuzz: %s on input %llu (written to %s)\n", why,
               static_cast<unsigned long long>(current_index), path.c_str());
}

void on_death() { save_current("sanitizer abort"); }

// Header = bytes [8, 8 + n) when the length field is sane, else empty.
bool header_span(const Bytes& d, size_t* n) {
  if (d.size() < 8) return false;
  uint64_t v = 0;
  for (int k = 7; k >= 0; --k) v = (v << 8) | d[k];
  if (v > d.size() - 8) return false;
  *n = static_cast<size_t>(v);
  return true;
}

void set_length(Bytes& d, uint64_t v) {
  if (d.size() < 8) d.resize(8);
  for (int k = 0; k < 8; ++k) d[k] = static_cast<uint8_t>(v >> (8 * k));
}

// Replaces header bytes [a, b) by `text` and fixes the length field up (usually).
void splice_header(Bytes& d, size_t n, size_t a, size_t b, const std::string& text) {
  d.erase(d.begin() + 8 + a, d.begin() + 8 + b);
  d.insert(d.begin() + 8 + a, text.begin(), text.end());
  if (below(8) != 0) set_length(d, n - (b - a) + text.size());
}

// Positions of digit runs (numbers) inside the header.
std::vector<std::pair<size_t, size_t>> numbers(const Bytes& d, size_t n) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < n;) {
    if (d[8 + i] >= '0' && d[8 + i] <= '9') {
      size_t j = i;
      while (j < n && d[8 + j] >= '0' && d[8 + j] <= '9') ++j;
      out.emplace_back(i, j);
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

std::vector<size_t> find_all(const Bytes& d, size_t n, const std::string& what) {
  std::vector<size_t> out;
  for (size_t i = 0; i + what.size() <= n; ++i)
    if (std::memcmp(d.data() + 8 + i, what.data(), what.size()) == 0) out.push_back(i);
  return out;
}

const char* const kNumbers[] = {"0", "1", "2", "3", "7", "8", "16", "47", "48", "49", "64",
                                "255", "512", "513", "1048576", "1048577", "2147483648",
                                "4294967296", "1099511627776", "1099511627777",
                                "9223372036854775807", "9223372036854775808",
                                "18446744073709551616", "-1", "-0", "1.5", "1e3", "1e400",
                                "123456789012345678901234567890"};
const char* const kDTypes[] = {"F32", "F64", "I32", "I64", "U8", "F16", "BF16", "", "f32"};
const char* const kNames[] = {"resnet12", "resnet18", "resnet", "deepid", "tfe", "vgg", ""};
const char* const kTokens[] = {"[", "]", "{", "}", ",", ":", "\"", "\\", "\\u", "\\ud800",
                               "\\udc00", "\\u0000", "null", "true", "NaN", "-", ".", "e",
                               "\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x01", " "};

void mutate_once(Bytes& d, const std::vector<Bytes>& seeds) {
  size_t n = 0;
  const bool have_header = header_span(d, &n);
  const uint64_t kind = below(16);
  if (have_header && n > 0) {
    switch (kind) {
      case 0: {  // the header length field
        const uint64_t choices[] = {0, 1, 2, n - 1, n + 1, d.size() - 8, d.size(), 100ull << 20,
                                    (100ull << 20) + 1, 1ull << 63, ~0ull};
        set_length(d, choices[below(std::size(choices))]);
        return;
      }
      case 1: case 2: case 3: {  // a number: offsets, shapes, num_classes, sizes, blocks
        auto nums = numbers(d, n);
        if (nums.empty()) break;
        const auto [a, b] = nums[below(nums.size())];
        std::string text = kNumbers[below(std::size(kNumbers))];
        if (below(3) == 0) text = std::to_string(std::stoull(std::string(d.begin() + 8 + a,
                                  d.begin() + 8 + std::min(b, a + 18))) + below(9) - 4);
        splice_header(d, n, a, b, text);
        return;
      }
      case 4: {  // two numbers swapped (overlapping or reordered ranges)
        auto nums = numbers(d, n);
        if (nums.size() < 2) break;
        auto x = nums[below(nums.size())], y = nums[below(nums.size())];
        if (x.first > y.first) std::swap(x, y);
        if (x.second > y.first) break;
        const std::string sx(d.begin() + 8 + x.first, d.begin() + 8 + x.second);
        const std::string sy(d.begin() + 8 + y.first, d.begin() + 8 + y.second);
        splice_header(d, n, y.first, y.second, sx);
        header_span(d, &n);
        splice_header(d, n, x.first, x.second, sy);
        return;
      }
      case 5: {  // a dtype
        auto at = find_all(d, n, "\"F32\"");
        if (at.empty()) break;
        const size_t a = at[below(at.size())] + 1;
        splice_header(d, n, a, a + 3, kDTypes[below(std::size(kDTypes))]);
        return;
      }
      case 6: {  // an architecture name (inside the escaped architecture JSON)
        for (const char* name : {"resnet", "deepid", "tfe"}) {
          auto at = find_all(d, n, std::string("\\\"") + name);
          if (at.empty()) continue;
          const size_t a = at[below(at.size())] + 2;
          size_t b = a;
          while (b < n && d[8 + b] != '\\') ++b;
          splice_header(d, n, a, b, kNames[below(std::size(kNames))]);
          return;
        }
        break;
      }
      case 7: case 8: {  // a JSON token or deep nesting inserted
        const size_t a = below(n + 1);
        std::string text = kTokens[below(std::size(kTokens))];
        if (below(4) == 0) text = std::string(below(200), "[{"[below(2)]);
        splice_header(d, n, a, a, text);
        return;
      }
      case 9: {  // a header range deleted or duplicated
        const size_t a = below(n), len = 1 + below(std::min<size_t>(n - a, 64));
        const std::string piece(d.begin() + 8 + a, d.begin() + 8 + a + len);
        if (below(2)) splice_header(d, n, a, a + len, "");
        else splice_header(d, n, a, a, piece);
        return;
      }
      case 10: {  // a float of the data section set to something hostile
        if (d.size() < 8 + n + 4) break;
        const size_t at = 8 + n + below((d.size() - 8 - n) / 4) * 4;
        const float values[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, 1e-45f, 1.0f};
        const float v = values[below(std::size(values))];
        std::memcpy(d.data() + at, &v, 4);
        return;
      }
      default: break;
    }
  }
  switch (below(5)) {
    case 0: if (!d.empty()) d.resize(below(d.size() + 1)); return;  // cut
    case 1: {  // extend with zeros or a piece of another seed
      const Bytes& other = seeds[below(seeds.size())];
      const size_t len = below(64) + 1, from = below(other.size());
      d.insert(d.end(), other.begin() + from, other.begin() + std::min(other.size(), from + len));
      return;
    }
    default: {  // byte flips anywhere (mostly in the header, where the structure is)
      const size_t span = have_header && below(4) ? 8 + n : d.size();
      for (uint64_t k = 0, m = 1 + below(4); k < m && span; ++k) {
        const size_t at = below(span);
        d[at] = below(2) ? static_cast<uint8_t>(rng()) : d[at] ^ (1u << below(8));
      }
      return;
    }
  }
}

int fail_input(const char* why, tfe_model* model = nullptr) {
  save_current(why);
  current = nullptr;
  tfe_model_free(model);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 1, max_inputs = 0;
  double seconds = 0;
  std::vector<Bytes> seeds;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else if (a == "--inputs" && i + 1 < argc) max_inputs = std::stoull(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
    else if (a == "--crash-dir" && i + 1 < argc) crash_dir = argv[++i];
    else {
      std::ifstream f(a, std::ios::binary);
      if (!f) {
        std::fprintf(stderr, "model_file_fuzz: cannot read %s\n", a.c_str());
        return 2;
      }
      seeds.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  if (seeds.empty() || (max_inputs == 0 && seconds <= 0)) {
    std::fprintf(stderr, "usage: model_file_fuzz [--seed S] [--inputs N] [--seconds T] "
                         "[--crash-dir DIR] SEED_FILE...\n");
    return 2;
  }
  rng.seed(seed);
  __sanitizer_set_death_callback(on_death);
  tfe_set_num_threads(1);

  // Every seed must load: otherwise the fuzzer would only test the first refusal.
  for (const Bytes& s : seeds) {
    tfe_model* m = nullptr;
    if (tfe_model_load_memory(s.data(), s.size(), &m) != TFE_OK) {
      std::fprintf(stderr, "model_file_fuzz: a seed does not load: %s\n", tfe_last_error());
      return 2;
    }
    tfe_model_free(m);
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t accepted = 0, overflowed = 0, by_status[16] = {};
  std::vector<uint8_t> pixels(37 * 29);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  // Seeds are drawn with weights 1/sqrt(size): a large seed costs more per input (copies,
  // and under ASan an mmap per large buffer), so the small ones get more of the inputs.
  std::vector<double> weights;
  for (const Bytes& s : seeds) weights.push_back(1.0 / std::sqrt(static_cast<double>(s.size())));
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  Bytes d;
  uint64_t i = 0;
  for (;; ++i) {
    if (max_inputs && i >= max_inputs) break;
    if (seconds > 0 && (i & 63) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds)
      break;
    d = seeds[pick(rng)];  // reuses d's buffer
    for (uint64_t k = 0, m = 1 + below(4); k < m; ++k) mutate_once(d, seeds);
    current = &d;
    current_index = i;
    tfe_model* model = nullptr;
    const tfe_status s = tfe_model_load_memory(d.data(), d.size(), &model);
    const char* msg = tfe_last_error();
    if (s == TFE_OK) {
      if (!model || *msg) return fail_input("TFE_OK without a model, or with a message", model);
      ++accepted;
      const int k = tfe_model_num_classes(model);
      std::vector<float> probs(k);
      const tfe_status ps =
          tfe_predict(model, pixels.data(), 37, 29, 37, TFE_PIXEL_GRAY8, probs.data());
      if (ps != TFE_OK) {
        // Hostile finite weights that pass the self-test may overflow on this image: that must
        // be this error, never NaN probabilities.
        const char* why = tfe_last_error();
        if (ps != TFE_ERR_FORMAT || !std::strstr(why, "non-finite logit") || std::strchr(why, '\n'))
          return fail_input("an accepted model does not predict", model);
        ++overflowed;
      } else {
        double sum = 0;
        for (float p : probs) {
          if (!std::isfinite(p))
            return fail_input("an accepted model predicts a non-finite value", model);
          sum += p;
        }
        if (std::fabs(sum - 1.0) > 1e-3) return fail_input("probabilities do not sum to 1", model);
      }
      tfe_model_free(model);
    } else {
      if (model) return fail_input("a refused load returned a model", model);
      if (s < 1 || s > 8 || s == TFE_ERR_INTERNAL) return fail_input("internal or unknown status");
      if (!*msg || std::strchr(msg, '\n')) return fail_input("empty or multi-line message");
      ++by_status[s];
    }
    current = nullptr;
    if ((i + 1) % 100000 == 0)
      std::fprintf(stderr, "model_file_fuzz: %llu inputs\n", static_cast<unsigned long long>(i + 1));
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("inputs: %llu, accepted: %llu, refused:", static_cast<unsigned long long>(i),
              static_cast<unsigned long long>(accepted));
  for (int s = 1; s < 9; ++s)
    if (by_status[s])
      std::printf(" %s %llu,", tfe_status_string(static_cast<tfe_status>(s)),
                  static_cast<unsigned long long>(by_status[s]));
  std::printf(" overflow at prediction %llu, crashes: 0, seconds: %.1f\n",
              static_cast<unsigned long long>(overflowed), wall);
  return 0;
}

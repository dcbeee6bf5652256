// classify: class probabilities of PGM/PPM face images with a tfe model file.
//
//   classify [--threads N] [--selftest] [--bench N] MODEL IMAGE...
//
// Prints one line per image: the path, then name=probability for every class, tab-separated,
// then the most likely class. --selftest runs the model's stored self-test first; --bench N
// times N single-image predictions of the first image (and N raw forward passes) and prints
// the median latencies in microseconds.
//
// Exit status: 0 success, 1 usage, 2 the model cannot be loaded, 3 an image cannot be read,
// 4 the self-test failed, 5 prediction failed.
//
// The PNM reader is deliberately tiny (no image library): P2/P5 (gray) and P3/P6 (RGB),
// '#' comments, maxval 1..65535 (16-bit samples big-endian, as the format says); samples are
// rescaled to 0..255 when maxval is not 255.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <tfe/tfe.hpp>

namespace {

struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // rows of width * channels bytes
};

class PnmReader {
 public:
  explicit PnmReader(std::vector<uint8_t> d) : d_(std::move(d)) {}

  Image read() {
    if (d_.size() < 2 || d_[0] != 'P') throw std::runtime_error("not a PNM file (no P magic)");
    const char kind = static_cast<char>(d_[1]);
    if (kind != '2' && kind != '3' && kind != '5' && kind != '6')
      throw std::runtime_error(std::string("unsupported PNM type P") + kind + " (P2/P3/P5/P6 only)");
    i_ = 2;
    Image im;
    im.channels = (kind == '3' || kind == '6') ? 3 : 1;
    im.width = static_cast<int>(number(1 << 15));
    im.height = static_cast<int>(number(1 << 15));
    const long maxval = number(65535);
    if (im.width < 1 || im.height < 1 || maxval < 1) throw std::runtime_error("bad PNM header");
    const size_t count = static_cast<size_t>(im.width) * im.height * im.channels;
    im.pixels.resize(count);
    auto scale = [&](long v) -> uint8_t {
      if (v > maxval) throw std::runtime_error("sample above maxval");
      return static_cast<uint8_t>(maxval == 255 ? v : (v * 255 + maxval / 2) / maxval);
    };
    if (kind == '2' || kind == '3') {
      for (size_t k = 0; k < count; ++k) im.pixels[k] = scale(number(maxval));
    } else {
      ++i_;  // exactly one whitespace byte after maxval
      const size_t bps = maxval > 255 ? 2 : 1;
      if (i_ > d_.size() || d_.size() - i_ < count * bps) throw std::runtime_error("truncated PNM data");
      for (size_t k = 0; k < count; ++k) {
        const long v = bps == 1 ? d_[i_ + k] : (long{d_[i_ + 2 * k]} << 8) | d_[i_ + 2 * k + 1];
        im.pixels[k] = scale(v);
      }
    }
    return im;
  }

 private:
  std::vector<uint8_t> d_;
  size_t i_ = 0;

  void skip_space() {
    while (i_ < d_.size()) {
      if (d_[i_] == '#') {
        while (i_ < d_.size() && d_[i_] != '\n') ++i_;
      } else if (std::isspace(d_[i_])) {
        ++i_;
      } else {
        break;
      }
    }
  }
  long number(long max) {
    skip_space();
    if (i_ >= d_.size() || !std::isdigit(d_[i_])) throw std::runtime_error("bad or truncated PNM");
    long v = 0;
    while (i_ < d_.size() && std::isdigit(d_[i_])) {
      v = v * 10 + (d_[i_++] - '0');
      if (v > max) throw std::runtime_error("PNM value too large");
    }
    return v;
  }
};

Image read_pnm(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open");
  std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return PnmReader(std::move(d)).read();
}

template <class F>
double median_us(int runs, F&& f) {
  std::vector<double> t(runs);
  for (int r = 0; r < runs; ++r) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t[r] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count();
  }
  std::nth_element(t.begin(), t.begin() + runs / 2, t.end());
  return t[runs / 2];
}

int usage() {
  std::cerr << "usage: classify [--threads N] [--selftest] [--bench N] MODEL IMAGE...\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool selftest = false;
  int bench = 0, threads = 0, a = 1;
  for (; a < argc && argv[a][0] == '-' && argv[a][1] == '-'; ++a) {
    const std::string opt = argv[a];
    if (opt == "--selftest") {
      selftest = true;
    } else if ((opt == "--bench" || opt == "--threads") && a + 1 < argc) {
      (opt == "--bench" ? bench : threads) = std::atoi(argv[++a]);
    } else {
      return usage();
    }
  }
  if (a >= argc || (argc - a < 2 && !selftest)) return usage();
  if (threads > 0) tfe::set_num_threads(threads);

  const std::string model_path = argv[a++];
  std::vector<tfe::Model> holder;
  try {
    holder.push_back(tfe::Model::load(model_path));
  } catch (const tfe::Exception& e) {
    std::cerr << "classify: error: " << tfe_status_string(e.status()) << ": " << e.what() << "\n";
    return 2;
  }
  const tfe::Model& model = holder.front();

  if (selftest) {
    try {
      const float d = model.selftest();
      std::cout << "selftest: ok, max |logit difference| " << d << "\n";
    } catch (const tfe::Exception& e) {
      std::cerr << "classify: error: " << e.what() << "\n";
      return 4;
    }
  }

  std::vector<std::string> paths(argv + a, argv + argc);
  std::vector<Image> images;
  for (const auto& p : paths) {
    try {
      images.push_back(read_pnm(p));
    } catch (const std::exception& e) {
      std::cerr << "classify: error: " << p << ": " << e.what() << "\n";
      return 3;
    }
  }
  if (images.empty()) return 0;

  std::vector<tfe::Image> views;
  for (const auto& im : images)
    views.push_back({im.pixels.data(), im.width, im.height, im.width * im.channels,
                     im.channels == 1 ? TFE_PIXEL_GRAY8 : TFE_PIXEL_RGB8});
  std::vector<std::vector<float>> probs;
  try {
    probs = model.predict(views);
  } catch (const tfe::Exception& e) {
    std::cerr << "classify: error: " << e.what() << "\n";
    return 5;
  }
  const auto names = model.class_names();
  for (size_t i = 0; i < images.size(); ++i) {
    std::printf("%s", paths[i].c_str());
    for (size_t k = 0; k < names.size(); ++k) std::printf("\t%s=%.9g", names[k].c_str(), probs[i][k]);
    const size_t best = std::max_element(probs[i].begin(), probs[i].end()) - probs[i].begin();
    std::printf("\t-> %s\n", names[best].c_str());
  }

  if (bench > 0) {
    const tfe::Image& v = views.front();
    std::vector<float> p(names.size());
    const int s = model.input_size();
    std::vector<float> x(static_cast<size_t>(s) * s, 0.5f), z(names.size());
    auto predict = [&] { tfe_predict(model.get(), v.pixels, v.width, v.height, v.stride_bytes, v.format, p.data()); };
    auto forward = [&] { tfe_forward(model.get(), x.data(), 1, z.data()); };
    for (int w = 0; w < 20; ++w) predict();
    const double tp = median_us(bench, predict);
    const double tf = median_us(bench, forward);
    std::printf("bench: %s threads=%d runs=%d predict_median_us=%.1f forward_median_us=%.1f\n",
                model.architecture().c_str(), tfe::num_threads(), bench, tp, tf);
  }
  return 0;
}

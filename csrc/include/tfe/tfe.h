/* tfe: embeddable inference for facial-expression models trained with tfe (C API).
 *
 * Usage:
 *
 *   #include <tfe/tfe.h>
 *
 *   tfe_model* model = NULL;
 *   if (tfe_model_load("tfe.safetensors", &model) != TFE_OK) {
 *     fprintf(stderr, "cannot load: %s\n", tfe_last_error());
 *     return 1;
 *   }
 *   int k = tfe_model_num_classes(model);
 *   float* probs = malloc(k * sizeof(float));
 *   // Any size, gray or colour, 8 bits per channel, rows stride_bytes apart:
 *   if (tfe_predict(model, pixels, width, height, width * 3, TFE_PIXEL_RGB8, probs) == TFE_OK)
 *     for (int i = 0; i < k; ++i) printf("%s %.4f\n", tfe_model_class_name(model, i), probs[i]);
 *   tfe_model_free(model);
 *
 *   With CMake: find_package(tfe CONFIG REQUIRED) and target_link_libraries(app PRIVATE tfe::tfe)
 *   (`python -m tfe --cmakedir` prints the folder to pass as -Dtfe_DIR for a pip install).
 *
 * What a model file is: the .safetensors file written by tfe-train / tfe.modelfile.save_model:
 * weights, the architecture (DeepID, ResNet12, ResNet18 or TFE), the preprocessing contract
 * (input size, grayscale, per-pixel mean/std, label order) and a self-test. The file is read
 * as untrusted input: every length, offset, dtype and shape is checked, and a malformed file
 * is reported as TFE_ERR_FORMAT (or TFE_ERR_VERSION) with a message, never a crash.
 *
 * What tfe_predict does (the same steps as tfe-predict in Python, to about 1e-6):
 *   1. grayscale: ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (alpha ignored), in double;
 *   2. centre-crop the longer side to a square, resize to the model's input size (area
 *      averaging when shrinking, bilinear with half-pixel centres when enlarging), round to
 *      the nearest integer (ties to even) and clamp to 0..255;
 *   3. per-pixel normalisation x = (pixel - mean[h,w]) / std[h,w] with the model's tensors;
 *   4. the network in evaluation mode (batch-norm running statistics, no dropout);
 *   5. softmax over the classes.
 *
 * Errors: every function returning tfe_status sets a thread-local message readable with
 * tfe_last_error() ("" after a success). No C++ exception ever leaves this API.
 *
 * Thread safety: a loaded tfe_model is immutable. Any number of threads may call
 * tfe_predict / tfe_predict_batch / tfe_forward / tfe_model_selftest / the accessors on the
 * same model at the same time: each call works in scratch memory owned by the calling
 * thread (a thread_local, grow-only workspace for activations, plus the kernels' own
 * thread_local buffers), never in the model. tfe_model_free must not race with other calls
 * on that model. tfe_set_num_threads is process-wide.
 *
 * Threads inside one call: a batch is spread over tfe_get_num_threads() OpenMP threads
 * (default: OMP_NUM_THREADS, else the number of cores), whole images per thread; a single
 * image is split over them layer by layer (each layer's outputs divided between the threads,
 * which meet at a barrier before the next layer). The layers are short (tens of microseconds
 * at 48x48), so when other work occupies the cores a descheduled thread stalls every layer:
 * there tfe_set_num_threads(1) gives the steadier single-image latency. Called from inside an
 * OpenMP parallel region, a call runs on the calling thread alone. The result does not depend
 * on the thread count (every output is summed by one thread in a fixed order).
 */
#ifndef TFE_TFE_H_
#define TFE_TFE_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(TFE_BUILDING_LIBRARY)
#define TFE_API __declspec(dllexport)
#else
#define TFE_API __declspec(dllimport)
#endif
#else
#define TFE_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Result of every fallible call. */
typedef enum tfe_status {
  TFE_OK = 0,
  TFE_ERR_IO = 1,          /* the file cannot be opened or read */
  TFE_ERR_FORMAT = 2,      /* not a well-formed tfe model file (truncated, bad header/JSON,
                              wrong tensor dtype/shape/size, overlapping or gapped tensor
                              ranges, non-finite weights, missing or unexpected tensors) */
  TFE_ERR_VERSION = 3,     /* a tfe model file of another format version than "tfe-1" */
  TFE_ERR_ARGUMENT = 4,    /* a bad argument: NULL pointer, non-positive size, stride too
                              small, unknown pixel format, class index out of range */
  TFE_ERR_UNSUPPORTED = 5, /* well-formed, but an architecture/preprocessing this library
                              does not run (e.g. colour input) */
  TFE_ERR_MEMORY = 6,      /* out of memory */
  TFE_ERR_SELFTEST = 7,    /* the self-test ran but exceeded the file's tolerance */
  TFE_ERR_INTERNAL = 8     /* a bug: please report it with tfe_last_error() */
} tfe_status;

/* Layout of one pixel: 8 bits per channel, channels interleaved. */
typedef enum tfe_pixel_format {
  TFE_PIXEL_GRAY8 = 0,
  TFE_PIXEL_RGB8 = 1,
  TFE_PIXEL_BGR8 = 2,
  TFE_PIXEL_RGBA8 = 3,
  TFE_PIXEL_BGRA8 = 4
} tfe_pixel_format;

/* One image for tfe_predict_batch. Rows are stride_bytes apart (>= width * channels). */
typedef struct tfe_image {
  const uint8_t* pixels;
  int width;
  int height;
  int stride_bytes;
  tfe_pixel_format format;
} tfe_image;

/* Opaque, immutable once loaded. */
typedef struct tfe_model tfe_model;

/* Library version, e.g. "0.1.0". */
TFE_API const char* tfe_version(void);
/* Short constant description of a status code. */
TFE_API const char* tfe_status_string(tfe_status status);
/* Message of the latest tfe_status-returning call on this thread ("" if it succeeded).
   Valid until the next such call on this thread. */
TFE_API const char* tfe_last_error(void);

/* Threads used by one call (process-wide; 1 <= n <= 1024). */
TFE_API tfe_status tfe_set_num_threads(int n);
TFE_API int tfe_get_num_threads(void);

/* Loads a model file, validates it (container, architecture, every tensor's dtype, shape and
   finite values) and runs its self-test. On success *out owns the model (free with
   tfe_model_free); on error *out is set to NULL. */
TFE_API tfe_status tfe_model_load(const char* path, tfe_model** out);
/* The same from a file already in memory (copied; `data` may be freed afterwards). */
TFE_API tfe_status tfe_model_load_memory(const void* data, size_t size, tfe_model** out);
/* Path of the model that ships with tfe (FER+ expressions; its card is MODEL_CARD.md
   beside it), found from where this library is installed: <lib dir>/../default_model/.
   Constant, never NULL; the file is absent where the library was not installed by
   `pip install .` (e.g. a build tree or an editable install). */
TFE_API const char* tfe_default_model_path(void);
/* tfe_model_load(tfe_default_model_path(), out). */
TFE_API tfe_status tfe_model_load_default(tfe_model** out);
/* Frees a model (NULL is allowed). */
TFE_API void tfe_model_free(tfe_model* model);

/* Number of classes (length of a probability vector); 0 if model is NULL. */
TFE_API int tfe_model_num_classes(const tfe_model* model);
/* Label of class i, owned by the model; NULL if model is NULL or i is out of range. */
TFE_API const char* tfe_model_class_name(const tfe_model* model, int i);
/* Side of the square network input in pixels (48 for the paper's models); 0 if NULL. */
TFE_API int tfe_model_input_size(const tfe_model* model);
/* Architecture name: "deepid", "resnet12", "resnet18", "resnet" or "tfe"; "" if NULL. */
TFE_API const char* tfe_model_architecture(const tfe_model* model);

/* Class probabilities of one image of any size: probs_out receives
   tfe_model_num_classes(model) floats summing to 1. */
TFE_API tfe_status tfe_predict(const tfe_model* model, const uint8_t* pixels, int width,
                               int height, int stride_bytes, tfe_pixel_format format,
                               float* probs_out);
/* The same for `count` images at once (one batched forward pass): probs_out receives
   count * num_classes floats, row i for images[i]. */
TFE_API tfe_status tfe_predict_batch(const tfe_model* model, const tfe_image* images, int count,
                                     float* probs_out);
/* The raw network: input float32 [count, 1, S, S] already normalised (S =
   tfe_model_input_size), logits_out float32 [count, num_classes]. */
TFE_API tfe_status tfe_forward(const tfe_model* model, const float* input, int count,
                               float* logits_out);

/* Runs the stored self-test input through the network and compares with the stored logits:
   *max_abs_diff (may be NULL) receives the largest absolute difference. Returns TFE_OK when
   it is within the tolerance (2^-10 times the larger of 1 and the largest stored |logit|:
   float32 rounding, never reached by a correct model), else TFE_ERR_SELFTEST. Loading runs
   it too: a file that fails it is refused with TFE_ERR_SELFTEST and never predicts. */
TFE_API tfe_status tfe_model_selftest(const tfe_model* model, float* max_abs_diff);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* TFE_TFE_H_ */

// Image preprocessing of tfe_predict: the C++ twin of python/tfe/data/transforms.py
// `resize_gray` (BT.601 luma, centre square crop, area/bilinear resampling, round half to
// even, clamp) followed by the model's per-pixel normalisation (Normalizer.apply).
#pragma once
#include <cstdint>

#include "tfe/tfe.h"

namespace tfe::engine {

// Throws Failure(TFE_ERR_ARGUMENT) when the image description is unusable: NULL pixels,
// non-positive or huge sizes, stride smaller than a row, unknown format.
void check_image(const uint8_t* pixels, int width, int height, int stride_bytes,
                 tfe_pixel_format format);

// out[size * size] = resize_gray(image, size) with keep_aspect=True, bit for bit up to the
// last-ulp rounding of the float64 sums (which only matters at exact .5 ties).
void resize_gray(uint8_t* out, int size, const uint8_t* pixels, int width, int height,
                 int stride_bytes, tfe_pixel_format format);

// out[i] = (float(gray[i]) - mean[i]) * inv_std[i], in float32 as Normalizer.apply computes
// it (inv_std = float32(1 / float64(std))).
void normalize_pixels(float* out, const uint8_t* gray, const float* mean, const float* inv_std,
               int count);

}  // namespace tfe::engine

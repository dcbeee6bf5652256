// Winograd F(2x2, 3x3) for the inference library; its weight packing is shared with the
// training Winograd (winograd_train.cpp).
#pragma once

namespace tfe::cpu {

// ---- Winograd F(2x2, 3x3) inference convolution (winograd.cpp) -------------------------
// The 3x3 stride-1 pad-1 case of the inference convolution with 2.25x fewer multiplications
// (results differ from conv_infer_run by float rounding only). Input: C channels of an H x H
// map whose padded pixel (r, q), 0 <= r, q <= H + 1 (0: the zero border, which the caller
// keeps zero), is x[c * x_plane + r * x_row + q]; x is read up to
// x + (C - 1) * x_plane + (H + 1) * x_row + H + 1. Weights w[K, C, 3, 3] (bias folded
// separately) are transformed and packed once by winograd_pack. Output (oh, ow) of channel k
// is stored at y[k * y_plane + y_base + oh * y_row + ow] = act(bias[k] + conv + res[same]),
// as conv_infer_run (res may alias y; outputs only, padding untouched). Runs the work items
// [item0, item1) of winograd_items on the calling thread; no allocation after its first call.
int winograd_items(int H);
long winograd_packed_size(int K, int C);  // floats
void winograd_pack(float* up, const float* w /*[K, C, 3, 3]*/, int K, int C);
void winograd_run(float* y, const float* x, long x_plane, int x_row, const float* up,
                  const float* bias, const float* res /*or nullptr*/, int K, int C, int H,
                  long y_plane, long y_base, int y_row, bool relu, int item0, int item1);

}  // namespace tfe::cpu

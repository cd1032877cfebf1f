// The inner loops of attention for one query head (src/engine/attention.cpp).
#pragma once

namespace clusterd {

// out (hd floats) = softmax(scale * q . k_j) weighted sum of v_j over positions
// j in [0, n): keys transposed (hd rows of `stride` floats, positions along the row,
// stride >= n rounded up to 16, since scores are computed 16 positions at a time),
// values a row of hd floats per position; `scores` holds n rounded up to 16 floats of
// scratch. The result depends only on q, n and the first n keys and values, never on
// the stride, so a token's result does not depend on the other tokens of its batch.
void attend_head(const float* q, const float* keys, int stride, const float* values, int n, int hd, float scale,
                 float* scores, float* out);

}  // namespace clusterd

// The inner loops of attention for the query heads of one KV head (src/engine/attention.cpp).
#pragma once

namespace clusterd {

// For each of n_heads query heads that share one KV head (a GQA group): out[h] (hd
// floats) = the softmax(scale * q[h] . k_j)-weighted sum of v_j over positions j in
// [0, n). q and out hold the heads one after another (hd floats each); keys are
// transposed (hd rows of `stride` floats, positions along the row; stride >= n rounded
// up to 16, since scores are computed 16 positions at a time); values are a row of hd
// floats per position; `scores` is scratch of n_heads * stride floats. A head's result
// depends only on its query, n and the first n keys and values (not on the stride or
// the other heads), so a token's result does not depend on the other tokens of its
// batch.
void attend_heads(const float* q, int n_heads, int hd, const float* keys, int stride, const float* values, int n,
                  float scale, float* scores, float* out);

}  // namespace clusterd

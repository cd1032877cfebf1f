#include "clusterd/collective/data_frame.h"

#include <cstring>

namespace clusterd {

const char* data_op_name(DataOp op) {
  switch (op) {
    case DataOp::kHello: return "hello";
    case DataOp::kAllReduce: return "all_reduce";
    case DataOp::kAllGather: return "all_gather";
    case DataOp::kBroadcast: return "broadcast";
    case DataOp::kReduceScatter: return "reduce_scatter";
    case DataOp::kSliceHello: return "slice_hello";
    case DataOp::kSliceRequest: return "slice_request";
    case DataOp::kSliceData: return "slice_data";
    case DataOp::kSliceError: return "slice_error";
  }
  return "unknown";
}

static void put(uint8_t* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
static uint64_t get(const uint8_t* in, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}

void encode_data_frame_header(const DataFrameHeader& h, uint8_t out[kDataFrameHeaderBytes]) {
  std::memcpy(out, "CDF1", 4);
  out[4] = static_cast<uint8_t>(h.op);
  out[5] = h.dtype;
  put(out + 6, h.flags, 2);
  put(out + 8, h.bytes, 4);
  put(out + 12, 0, 4);
  put(out + 16, h.epoch, 8);
  put(out + 24, h.sequence, 8);
}

Result<DataFrameHeader> decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes> in) {
  if (std::memcmp(in.data(), "CDF1", 4) != 0) return invalid_argument("data frame without the CDF1 magic");
  DataFrameHeader h;
  uint8_t op = in[4];
  if ((op < 1 || op > 5) && (op < 16 || op > 19)) {
    return invalid_argument("data frame with unknown op " + std::to_string(op));
  }
  h.op = static_cast<DataOp>(op);
  h.dtype = in[5];
  h.flags = static_cast<uint16_t>(get(in.data() + 6, 2));
  h.bytes = static_cast<uint32_t>(get(in.data() + 8, 4));
  h.epoch = get(in.data() + 16, 8);
  h.sequence = get(in.data() + 24, 8);
  if (h.bytes > kMaxDataFramePayload) {
    return invalid_argument("data frame of " + std::to_string(h.bytes) + " bytes exceeds the limit of " +
                            std::to_string(kMaxDataFramePayload));
  }
  return h;
}

}  // namespace clusterd

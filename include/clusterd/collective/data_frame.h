// Data-link frames between the ranks of a group (docs/wire-formats.md): a 32-byte
// header {magic "CDF1", op, dtype, flags, payload bytes, epoch, sequence}, then the
// payload. Little-endian: the payloads are raw floats, and every machine clusterd runs
// on (x86-64, Apple silicon, aarch64 Linux) is little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "clusterd/common/status.h"

namespace clusterd {

constexpr size_t kDataFrameHeaderBytes = 32;
constexpr uint32_t kMaxDataFramePayload = 256u << 20;  // 256 MiB

enum class DataOp : uint8_t {
  kHello = 1,  // link set-up: payload is the handshake
  kAllReduce = 2,
  kAllGather = 3,
  kBroadcast = 4,
  kReduceScatter = 5,
  // The slice link (a model's bytes streamed to a rank without a copy; node/slices.h).
  kSliceHello = 16,    // flags 0: hello, 1: proof
  kSliceRequest = 17,  // flags 0: a byte range {u64 offset, u64 length}, 1: the manifest
  kSliceData = 18,     // the reply, in pieces of at most kSliceDataPiece bytes
  kSliceError = 19,    // the reply when a request cannot be served: a message
};
const char* data_op_name(DataOp op);

struct DataFrameHeader {
  DataOp op = DataOp::kHello;
  uint8_t dtype = 0;  // 0: f32
  uint16_t flags = 0;
  uint32_t bytes = 0;  // payload length
  uint64_t epoch = 0;
  uint64_t sequence = 0;
};

void encode_data_frame_header(const DataFrameHeader& header, uint8_t out[kDataFrameHeaderBytes]);
// Checks the magic, the op and the length limit; errors say what was wrong.
Result<DataFrameHeader> decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes> bytes);

}  // namespace clusterd

// Test helper: writes a SeqPE model directory in the project's format
// (config.json + model.safetensors, F32; server/model/seqpe/seqpe_loader.h)
// with deterministic pseudo-random weights, large enough that the
// positional terms visibly change the logits.
//
// Thread-safety: plain functions, no shared state.
#ifndef HEADROOM_TESTS_REFERENCE_SEQPE_MODEL_WRITER_H_
#define HEADROOM_TESTS_REFERENCE_SEQPE_MODEL_WRITER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "server/model/seqpe/seqpe_config.h"

namespace hr::testing {

struct SeqPeWriteOptions {
  std::string skip_tensor;     // omit this tensor
  std::string reshape_tensor;  // write this tensor with one extra row
  std::string extra_tensor;    // add an unused tensor of this name
};

// The tiny models the SeqPE tests use (vocab 61, dim 32, 4 heads, 2 layers;
// encoder E 24, 3 heads, 2 layers):
//   "scalar_single": attn_scalar, shared pe_qk, per-head bias, P 16, 3 digits,
//                    s 0.75, temperature 1.25, causal encoder, final LayerNorm;
//   "input_add":     P 32, 2 digits, bidirectional padding-masked encoder, no
//                    final LayerNorm, untied output;
//   "scalar_none":   attn_scalar, pq = pk = PE, one bias for all heads, P 32,
//                    3 digits, padding masked, s 0.3.
SeqPeConfig SeqPeTestConfig(const std::string& name);

// Writes `dir`/config.json and `dir`/model.safetensors (dir must exist).
absl::Status WriteSeqPeModelDir(const std::string& dir, const SeqPeConfig& config, uint64_t seed,
                                const SeqPeWriteOptions& options = {});

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_REFERENCE_SEQPE_MODEL_WRITER_H_

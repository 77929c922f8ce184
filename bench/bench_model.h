// The benchmark model: a randomly initialised ~100M-parameter LLaMA whose
// shape comes from flags shared by every benchmark (--dim 768 --layers 12
// --heads 12 --kv_heads 12 --ffn 2048 --vocab 32000 by default).
#ifndef HEADROOM_BENCH_BENCH_MODEL_H_
#define HEADROOM_BENCH_BENCH_MODEL_H_

#include "absl/status/statusor.h"
#include "server/model/config.h"

namespace hr::bench {

// The config the shape flags describe (trained_context 4096); INVALID_ARGUMENT
// when they are inconsistent.
absl::StatusOr<ModelConfig> BenchModelConfig();

}  // namespace hr::bench

#endif  // HEADROOM_BENCH_BENCH_MODEL_H_

// The position side of a SeqPE model: its encoder and the shared, lazily
// grown table of per-position rows the forward pass reads
// (server/longctx/seqpe/position_table.h):
//   attn_scalar + qk_proj single: row(p) = pe_qk(PE(p)) = [pq(p) | pk(p)]  (2P)
//   attn_scalar + qk_proj none:   row(p) = PE(p) = pq(p) = pk(p)           (P)
//   input_add:                    row(p) = PE(p)                           (P = dim)
//
// Thread-safety: thread-safe (see PositionTable); one instance may serve
// every worker built over the same weights.
// Ownership: borrows the weights, which must outlive it.
#ifndef HEADROOM_SERVER_MODEL_SEQPE_SEQPE_POSITIONS_H_
#define HEADROOM_SERVER_MODEL_SEQPE_SEQPE_POSITIONS_H_

#include "server/longctx/seqpe/position_encoder.h"
#include "server/longctx/seqpe/position_table.h"
#include "server/model/seqpe/seqpe_weights.h"

namespace hr {

class SeqPePositions {
 public:
  explicit SeqPePositions(const SeqPeWeights& weights)
      : encoder_(weights.config.encoder, weights.encoder),
        table_(&encoder_, weights.pe_qk.w.data != nullptr ? &weights.pe_qk : nullptr) {}

  const PositionEncoder& encoder() const { return encoder_; }
  PositionTable& table() { return table_; }
  const PositionTable& table() const { return table_; }

 private:
  PositionEncoder encoder_;
  PositionTable table_;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_SEQPE_SEQPE_POSITIONS_H_

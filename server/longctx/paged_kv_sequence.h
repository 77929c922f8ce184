// What the engine needs of a sequence whose K/V live in the paged KV cache
// (server/kvcache/block_pool.h), whatever the model family: its block table
// (for the prefix cache), prefix adoption, selection statistics and a debug
// observer of the chunks each query reads. Implemented by PagedSequence
// (LLaMA / RoPE, server/longctx/paged_sequence.h) and SeqPePagedSequence
// (SeqPE, server/longctx/seqpe/seqpe_paged_sequence.h).
//
// Thread-safety: one thread at a time (the worker that owns the sequence).
#ifndef HEADROOM_SERVER_LONGCTX_PAGED_KV_SEQUENCE_H_
#define HEADROOM_SERVER_LONGCTX_PAGED_KV_SEQUENCE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "server/model/sequence_attention.h"

namespace hr {

// Receives the chunk list chosen for every (layer, head, query position) when
// attached to a sequence (debug dumps and tests).
class SelectionObserver {
 public:
  virtual ~SelectionObserver() = default;
  virtual void OnSelection(int layer, int head, int64_t position,
                           std::span<const int32_t> chunks) = 0;
};

struct PagedSequenceStats {
  int64_t chunks_scored = 0;    // (query, head) × candidate chunk scores computed
  int64_t chunks_selected = 0;  // (query, head) × chunks attended
  int64_t keys_attended = 0;    // (query, head) × keys read
  int64_t summaries_built = 0;  // (chunk, layer) summaries computed
};

class PagedKvSequence : public SequenceAttention {
 public:
  // Block of chunk i, for every chunk started so far.
  virtual const std::vector<int32_t>& block_table() const = 0;

  // Starts the sequence from complete chunks another sequence computed (the
  // prefix cache): takes a reference on each block, which must hold a full
  // chunk of this sequence's chunk size, with summaries, computed with the
  // same model and long-context parameters over the same tokens.
  // REQUIRES: length() == 0.
  virtual void AdoptPrefix(std::span<const int32_t> blocks) = 0;

  virtual const PagedSequenceStats& stats() const = 0;

  // `observer` (may be null; not owned) hears every selection from now on.
  virtual void set_observer(SelectionObserver* observer) = 0;
};

}  // namespace hr

#endif  // HEADROOM_SERVER_LONGCTX_PAGED_KV_SEQUENCE_H_

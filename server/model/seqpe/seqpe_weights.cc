#include "server/model/seqpe/seqpe_weights.h"

#include <utility>

#include "server/common/status.h"

namespace hr {

Matrix SeqPeWeights::Own(std::vector<float> values, int64_t rows, int64_t cols) {
  HR_CHECK(rows >= 0 && cols >= 0 &&
               static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) == values.size(),
           "SeqPeWeights::Own: size does not match rows x cols");
  auto owned = std::make_shared<const std::vector<float>>(std::move(values));
  Matrix m{owned->data(), rows, cols};
  storage.push_back(std::move(owned));
  return m;
}

}  // namespace hr

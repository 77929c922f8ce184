// Reads a JSON object file (model configs, safetensors indexes).
//
// Thread-safety: pure function.
#ifndef HEADROOM_SERVER_MODEL_JSON_FILE_H_
#define HEADROOM_SERVER_MODEL_JSON_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace hr {

// NOT_FOUND when missing, PERMISSION_DENIED when unreadable,
// INVALID_ARGUMENT unless it holds one JSON object; messages name the file.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

}  // namespace hr

#endif  // HEADROOM_SERVER_MODEL_JSON_FILE_H_

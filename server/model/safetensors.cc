#include "server/model/safetensors.h"

#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/status.h"

namespace hr {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // 100 MB, as the reference library
constexpr size_t kMaxDims = 8;

std::optional<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return std::nullopt;
}

// A non-negative JSON integer that fits int64_t.
std::optional<uint64_t> AsIndex(const nlohmann::json& j) {
  if (!j.is_number_unsigned()) return std::nullopt;  // negatives parse as number_integer
  const uint64_t v = j.get<uint64_t>();
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  HR_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  HR_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                      Parse(mapped.data(), mapped.size_bytes(), path));
  file->file_ = std::move(mapped);  // the mapping's address does not change
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(const uint8_t* data,
                                                                        size_t size,
                                                                        std::string_view name) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->name_ = std::string(name);
  const std::string& fname = file->name_;

  if (size < 8) {
    return absl::DataLossError(absl::StrCat(fname, ": truncated file: ", size,
                                            " bytes, the header length alone needs 8 at offset 0"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian host (checked in gguf.cc)
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(fname, ": header length ", header_len,
                                                   " exceeds the 100 MB limit at offset 0"));
  }
  if (header_len > size - 8) {
    return absl::DataLossError(absl::StrCat(fname, ": header length ", header_len,
                                            " exceeds the ", size - 8,
                                            " bytes after it (truncated file?) at offset 0"));
  }
  const char* json_begin = reinterpret_cast<const char*>(data + 8);
  const char* json_end = json_begin + header_len;

  // Duplicate top-level keys would silently overwrite each other: detect them.
  std::set<std::string> seen_keys;
  std::string duplicate;
  nlohmann::json::parser_callback_t callback =
      [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
          std::string key = parsed.get<std::string>();
          if (!seen_keys.insert(key).second && duplicate.empty()) duplicate = std::move(key);
        }
        return true;
      };
  nlohmann::json header =
      nlohmann::json::parse(json_begin, json_end, callback, /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fname, ": header (", header_len, " bytes at offset 8) is not valid JSON"));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fname, ": header at offset 8 is not a JSON object"));
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(fname, ": tensor '", duplicate, "': duplicate entry in the header"));
  }

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& tname = it.key();
    if (tname == "__metadata__") continue;
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(fname, ": tensor '", tname, "': ",
                                                     absl::string_view(what.data(), what.size())));
    };
    const nlohmann::json& entry = it.value();
    if (!entry.is_object()) return bad("entry is not a JSON object");

    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) return bad("missing string 'dtype'");
    const std::string dtype_name = dtype_it->get<std::string>();
    std::optional<DType> dtype = ParseDType(dtype_name);
    if (!dtype) {
      return absl::UnimplementedError(absl::StrCat(fname, ": tensor '", tname,
                                                   "': unsupported dtype '", dtype_name,
                                                   "' (supported: F32, F16, BF16)"));
    }

    auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) return bad("missing array 'shape'");
    if (shape_it->size() > kMaxDims) {
      return bad(absl::StrCat("shape has ", shape_it->size(), " dimensions (at most ", kMaxDims,
                              ")"));
    }
    SafetensorsTensor t;
    t.name = tname;
    t.dtype = *dtype;
    uint64_t n_elements = 1;
    for (const nlohmann::json& d : *shape_it) {
      std::optional<uint64_t> dim = AsIndex(d);
      if (!dim) return bad("shape entries must be non-negative integers");
      if (*dim != 0 && n_elements > std::numeric_limits<uint64_t>::max() / *dim) {
        return bad("element count overflows");
      }
      n_elements *= *dim;
      t.shape.push_back(static_cast<int64_t>(*dim));
    }

    auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      return bad("missing 'data_offsets' [begin, end]");
    }
    std::optional<uint64_t> begin = AsIndex((*offsets_it)[0]);
    std::optional<uint64_t> end = AsIndex((*offsets_it)[1]);
    if (!begin || !end) return bad("data_offsets must be non-negative integers");
    if (*begin > *end) {
      return bad(absl::StrCat("data_offsets begin ", *begin, " > end ", *end));
    }
    std::optional<uint64_t> bytes = DTypeBytes(t.dtype, n_elements);
    if (!bytes || *bytes != *end - *begin) {
      return bad(absl::StrCat("shape needs ", n_elements, " ", DTypeName(t.dtype).data(),
                              " elements but data_offsets [", *begin, ", ", *end, ") hold ",
                              *end - *begin, " bytes"));
    }
    if (*end > data_size) {
      return bad(absl::StrCat("data_offsets [", *begin, ", ", *end,
                              ") extend past the data section (", data_size,
                              " bytes starting at offset ", data_start, ")"));
    }
    t.size_bytes = *bytes;
    t.file_offset = data_start + *begin;
    t.data = data + t.file_offset;
    file->tensors_.push_back(std::move(t));
  }
  return file;
}

const SafetensorsTensor* SafetensorsFile::FindTensor(std::string_view name) const {
  for (const SafetensorsTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace hr

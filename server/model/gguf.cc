#include "server/model/gguf.h"

#include <bit>
#include <cstring>
#include <limits>
#include <set>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status.h"

namespace hr {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF parser reads little-endian values in place");

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// GGUF metadata value types.
enum GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Smallest encoded size of one value of `type` (strings: the u64 length).
// 0 for an unknown type.
uint64_t MinValueBytes(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
    case kString:
      return 8;
    case kArray:
      return 12;
    default:
      return 0;
  }
}

constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;

// A bounds-checked little-endian reader over the file buffer. Every read
// checks the remaining bytes first; errors name the file and the offset.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  absl::Status Truncated(uint64_t need, std::string_view what) const {
    return absl::DataLossError(absl::StrCat(name_, ": truncated file: ", AV(what), " needs ", need,
                                            " bytes at offset ", pos_, ", only ", remaining(),
                                            " remain"));
  }
  absl::Status Invalid(std::string_view what, size_t at) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", AV(what), " at offset ", at));
  }

  template <typename T>
  absl::Status Read(T* out, std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return Truncated(sizeof(T), what);
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, std::string_view what) {
    const size_t start = pos_;
    uint64_t len = 0;
    HR_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      if (len > size_) {
        return Invalid(absl::StrCat(AV(what), ": string length ", len, " exceeds the file size ",
                                    size_),
                       start);
      }
      return Truncated(len, what);
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return absl::OkStatus();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

using Scalar = std::variant<int64_t, uint64_t, double, bool, std::string>;

template <typename Raw, typename Stored>
absl::Status ReadAs(Cursor& c, std::string_view what, Scalar* out) {
  Raw v{};
  HR_RETURN_IF_ERROR(c.Read(&v, what));
  *out = static_cast<Stored>(v);
  return absl::OkStatus();
}

absl::Status ReadScalar(Cursor& c, uint32_t type, std::string_view what, Scalar* out) {
  switch (type) {
    case kU8:
      return ReadAs<uint8_t, uint64_t>(c, what, out);
    case kI8:
      return ReadAs<int8_t, int64_t>(c, what, out);
    case kU16:
      return ReadAs<uint16_t, uint64_t>(c, what, out);
    case kI16:
      return ReadAs<int16_t, int64_t>(c, what, out);
    case kU32:
      return ReadAs<uint32_t, uint64_t>(c, what, out);
    case kI32:
      return ReadAs<int32_t, int64_t>(c, what, out);
    case kU64:
      return ReadAs<uint64_t, uint64_t>(c, what, out);
    case kI64:
      return ReadAs<int64_t, int64_t>(c, what, out);
    case kF32:
      return ReadAs<float, double>(c, what, out);
    case kF64:
      return ReadAs<double, double>(c, what, out);
    case kBool: {
      uint8_t v = 0;
      const size_t at = c.pos();
      HR_RETURN_IF_ERROR(c.Read(&v, what));
      if (v > 1) return c.Invalid(absl::StrCat(AV(what), ": bool value ", v, " is not 0 or 1"), at);
      *out = v != 0;
      return absl::OkStatus();
    }
    case kString: {
      std::string s;
      HR_RETURN_IF_ERROR(c.ReadString(&s, what));
      *out = std::move(s);
      return absl::OkStatus();
    }
    default:
      return c.Invalid(absl::StrCat(AV(what), ": unknown value type ", type), c.pos());
  }
}

absl::Status ReadValue(Cursor& c, uint32_t type, std::string_view what, GgufValue* out) {
  if (type != kArray) {
    Scalar s;
    HR_RETURN_IF_ERROR(ReadScalar(c, type, what, &s));
    std::visit([&](auto&& v) { out->value = std::move(v); }, std::move(s));
    return absl::OkStatus();
  }
  const size_t at = c.pos();
  uint32_t elem_type = 0;
  uint64_t count = 0;
  HR_RETURN_IF_ERROR(c.Read(&elem_type, what));
  if (elem_type == kArray) return c.Invalid(absl::StrCat(AV(what), ": nested arrays"), at);
  const uint64_t min_bytes = MinValueBytes(elem_type);
  if (min_bytes == 0) {
    return c.Invalid(absl::StrCat(AV(what), ": unknown array element type ", elem_type), at);
  }
  HR_RETURN_IF_ERROR(c.Read(&count, what));
  // Never allocate from an unchecked count: every element takes >= min_bytes.
  if (count > c.remaining() / min_bytes) {
    return c.Invalid(absl::StrCat(AV(what), ": array of ", count, " elements does not fit in the ",
                                  c.remaining(), " remaining bytes"),
                     at + 4);
  }
  GgufValue::Array array;
  array.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    Scalar s;
    HR_RETURN_IF_ERROR(ReadScalar(c, elem_type, what, &s));
    array.push_back(std::move(s));
  }
  out->value = std::move(array);
  return absl::OkStatus();
}

std::optional<DType> GgmlTypeToDType(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::kF32;
    case 1:
      return DType::kF16;
    case 8:
      return DType::kQ8_0;
    case 30:
      return DType::kBF16;
    default:
      return std::nullopt;
  }
}

const char* ValueTypeName(const GgufValue& v) {
  switch (v.value.index()) {
    case 0:
      return "signed integer";
    case 1:
      return "unsigned integer";
    case 2:
      return "float";
    case 3:
      return "bool";
    case 4:
      return "string";
    case 5:
      return "array";
  }
  return "?";
}

std::optional<int64_t> ScalarToInt(const Scalar& s) {
  if (const auto* i = std::get_if<int64_t>(&s)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&s)) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(*u);
    }
  }
  return std::nullopt;
}

std::optional<double> ScalarToFloat(const Scalar& s) {
  if (const auto* d = std::get_if<double>(&s)) return *d;
  if (const auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&s)) return static_cast<double>(*u);
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  HR_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  HR_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file,
                      Parse(mapped.data(), mapped.size_bytes(), path));
  file->file_ = std::move(mapped);  // the mapping's address does not change
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size,
                                                          std::string_view name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->name_ = std::string(name);
  const std::string& fname = file->name_;
  Cursor c(data, size, fname);

  // Header.
  uint32_t magic = 0;
  HR_RETURN_IF_ERROR(c.Read(&magic, "magic"));
  if (std::memcmp(&magic, "GGUF", 4) != 0) {
    return c.Invalid("bad magic (not a GGUF file)", 0);
  }
  uint32_t version = 0;
  HR_RETURN_IF_ERROR(c.Read(&version, "version"));
  if (version == 1) {
    return absl::UnimplementedError(
        absl::StrCat(fname, ": GGUF version 1 is not supported (2 and 3 are) at offset 4"));
  }
  if (version != 2 && version != 3) {
    return c.Invalid(absl::StrCat("unsupported GGUF version ", version,
                                  (version & 0xFFFF) == 0 ? " (big-endian file?)" : ""),
                     4);
  }
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  HR_RETURN_IF_ERROR(c.Read(&n_tensors, "tensor count"));
  HR_RETURN_IF_ERROR(c.Read(&n_kv, "metadata count"));
  // A key-value takes at least 13 bytes (key length, type, one-byte value);
  // a tensor info at least 24 (name length, n_dims, type, offset).
  if (n_kv > c.remaining() / 13) {
    return c.Invalid(absl::StrCat("metadata count ", n_kv, " does not fit in the file"), 16);
  }
  if (n_tensors > c.remaining() / 24) {
    return c.Invalid(absl::StrCat("tensor count ", n_tensors, " does not fit in the file"), 8);
  }

  // Metadata.
  size_t alignment_at = 0;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    std::string key;
    HR_RETURN_IF_ERROR(c.ReadString(&key, absl::StrCat("metadata key #", i)));
    uint32_t type = 0;
    const std::string what = absl::StrCat("metadata '", key, "'");
    const size_t type_at = c.pos();
    HR_RETURN_IF_ERROR(c.Read(&type, what));
    if (MinValueBytes(type) == 0) {
      return c.Invalid(absl::StrCat(what, ": unknown value type ", type), type_at);
    }
    GgufValue value;
    if (key == "general.alignment") alignment_at = c.pos();
    HR_RETURN_IF_ERROR(ReadValue(c, type, what, &value));
    if (!file->metadata_.emplace(key, std::move(value)).second) {
      return c.Invalid(absl::StrCat("duplicate metadata key '", key, "'"), at);
    }
  }

  uint64_t alignment = kDefaultAlignment;
  if (auto it = file->metadata_.find("general.alignment"); it != file->metadata_.end()) {
    std::optional<int64_t> a;
    if (!std::holds_alternative<GgufValue::Array>(it->second.value)) {
      std::visit(
          [&](auto&& v) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(v)>, GgufValue::Array>) {
              a = ScalarToInt(Scalar(v));
            }
          },
          it->second.value);
    }
    if (!a || *a <= 0 || static_cast<uint64_t>(*a) > kMaxAlignment ||
        !std::has_single_bit(static_cast<uint64_t>(*a))) {
      return c.Invalid(
          absl::StrCat("general.alignment must be an integer power of two up to ", kMaxAlignment),
          alignment_at);
    }
    alignment = static_cast<uint64_t>(*a);
  }

  // Tensor infos.
  struct RawInfo {
    uint64_t offset;
    size_t info_at;
  };
  std::vector<RawInfo> raw;
  raw.reserve(static_cast<size_t>(n_tensors));
  file->tensors_.reserve(static_cast<size_t>(n_tensors));
  std::set<std::string_view> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    GgufTensorInfo info;
    HR_RETURN_IF_ERROR(c.ReadString(&info.name, absl::StrCat("tensor name #", i)));
    const std::string what = absl::StrCat("tensor '", info.name, "'");
    uint32_t n_dims = 0;
    const size_t dims_at = c.pos();
    HR_RETURN_IF_ERROR(c.Read(&n_dims, what));
    if (n_dims > kMaxDims) {
      return c.Invalid(absl::StrCat(what, ": ", n_dims, " dimensions (at most ", kMaxDims, ")"),
                       dims_at);
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const size_t dim_at = c.pos();
      uint64_t dim = 0;
      HR_RETURN_IF_ERROR(c.Read(&dim, what));
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.Invalid(absl::StrCat(what, ": dimension ", d, " = ", dim, " is negative"), dim_at);
      }
      if (dim != 0 && n_elements > std::numeric_limits<uint64_t>::max() / dim) {
        return c.Invalid(absl::StrCat(what, ": element count overflows"), dim_at);
      }
      n_elements *= dim;
      info.dims.push_back(static_cast<int64_t>(dim));
    }
    const size_t type_at = c.pos();
    uint32_t ggml_type = 0;
    HR_RETURN_IF_ERROR(c.Read(&ggml_type, what));
    std::optional<DType> dtype = GgmlTypeToDType(ggml_type);
    if (!dtype) {
      return absl::UnimplementedError(
          absl::StrCat(fname, ": ", what, ": unsupported ggml tensor type ", ggml_type,
                       " (supported: 0 F32, 1 F16, 8 Q8_0, 30 BF16) at offset ", type_at));
    }
    info.dtype = *dtype;
    if (info.dtype == DType::kQ8_0 && (info.dims.empty() || info.dims[0] % kQ8_0BlockSize != 0)) {
      return c.Invalid(absl::StrCat(what, ": Q8_0 row length must be a multiple of ",
                                    kQ8_0BlockSize),
                       type_at);
    }
    std::optional<uint64_t> bytes = DTypeBytes(info.dtype, n_elements);
    if (!bytes) return c.Invalid(absl::StrCat(what, ": byte size overflows"), type_at);
    info.size_bytes = *bytes;
    uint64_t offset = 0;
    const size_t offset_at = c.pos();
    HR_RETURN_IF_ERROR(c.Read(&offset, what));
    if (offset % alignment != 0) {
      return c.Invalid(absl::StrCat(what, ": data offset ", offset,
                                    " is not a multiple of the alignment ", alignment),
                       offset_at);
    }
    file->tensors_.push_back(std::move(info));
    raw.push_back({offset, at});
  }
  for (size_t i = 0; i < file->tensors_.size(); ++i) {
    if (!names.insert(file->tensors_[i].name).second) {
      return c.Invalid(absl::StrCat("duplicate tensor name '", file->tensors_[i].name, "'"),
                       raw[i].info_at);
    }
  }

  // Data section: starts at the end of the header, aligned.
  const uint64_t header_end = c.pos();
  const uint64_t data_start = (header_end + alignment - 1) / alignment * alignment;
  for (size_t i = 0; i < file->tensors_.size(); ++i) {
    GgufTensorInfo& t = file->tensors_[i];
    const uint64_t offset = raw[i].offset;
    if (data_start > size || offset > size - data_start ||
        t.size_bytes > size - data_start - offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          fname, ": tensor '", t.name, "': data at offset ", offset, " (+", t.size_bytes,
          " bytes) relative to the data section at offset ", data_start,
          " extends past the end of the file (", size, " bytes)"));
    }
    t.file_offset = data_start + offset;
    t.data = data + t.file_offset;
  }
  return file;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool GgufFile::Has(std::string_view key) const {
  return metadata_.find(std::string(key)) != metadata_.end();
}

namespace {

absl::StatusOr<const GgufValue*> Lookup(const std::map<std::string, GgufValue>& metadata,
                                        const std::string& file, std::string_view key) {
  auto it = metadata.find(std::string(key));
  if (it == metadata.end()) {
    return absl::NotFoundError(absl::StrCat(file, ": metadata key '", AV(key), "' not found"));
  }
  return &it->second;
}

absl::Status WrongType(const std::string& file, std::string_view key, const GgufValue& v,
                       std::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": metadata key '", AV(key), "' is a ",
                                                 ValueTypeName(v), ", expected ", AV(expected)));
}

Scalar AsScalar(const GgufValue& v) {
  Scalar s;
  std::visit(
      [&](auto&& x) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, GgufValue::Array>) s = x;
      },
      v.value);
  return s;
}

template <typename T, typename Convert>
absl::StatusOr<std::vector<T>> GetArray(const std::map<std::string, GgufValue>& metadata,
                                        const std::string& file, std::string_view key,
                                        std::string_view expected, Convert convert) {
  HR_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata, file, key));
  const auto* array = std::get_if<GgufValue::Array>(&v->value);
  if (array == nullptr) return WrongType(file, key, *v, expected);
  std::vector<T> out;
  out.reserve(array->size());
  for (size_t i = 0; i < array->size(); ++i) {
    std::optional<T> x = convert((*array)[i]);
    if (!x) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": metadata key '", AV(key),
                                                     "': element ", i, " is not ", AV(expected)));
    }
    out.push_back(std::move(*x));
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  HR_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, name_, key));
  if (std::holds_alternative<int64_t>(v->value) || std::holds_alternative<uint64_t>(v->value)) {
    std::optional<int64_t> i = ScalarToInt(AsScalar(*v));
    if (!i) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": metadata key '", AV(key),
                                                     "' does not fit in a signed 64-bit integer"));
    }
    return *i;
  }
  return WrongType(name_, key, *v, "integer");
}

absl::StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  HR_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, name_, key));
  if (std::holds_alternative<bool>(v->value) || std::holds_alternative<std::string>(v->value) ||
      std::holds_alternative<GgufValue::Array>(v->value)) {
    return WrongType(name_, key, *v, "number");
  }
  return *ScalarToFloat(AsScalar(*v));
}

absl::StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  HR_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, name_, key));
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  return WrongType(name_, key, *v, "string");
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  HR_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, name_, key));
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  return WrongType(name_, key, *v, "bool");
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  return GetArray<std::string>(metadata_, name_, key, "an array of strings",
                               [](const Scalar& s) -> std::optional<std::string> {
                                 if (const auto* x = std::get_if<std::string>(&s)) return *x;
                                 return std::nullopt;
                               });
}

absl::StatusOr<std::vector<double>> GgufFile::GetFloatArray(std::string_view key) const {
  return GetArray<double>(metadata_, name_, key, "an array of numbers", ScalarToFloat);
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  return GetArray<int64_t>(metadata_, name_, key, "an array of integers", ScalarToInt);
}

}  // namespace hr

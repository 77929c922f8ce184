#include "server/api/request_parsing.h"

#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/slice.h"
#include "server/model/tokenizer.h"

namespace hr::api {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// The path of the first string field under `type` whose bytes are not valid
// UTF-8, reading `wire` generically (no UTF-8 check of its own); nullopt when
// none is (or the bytes do not parse at all).
std::optional<std::string> FindInvalidUtf8(std::string_view wire, const Descriptor& type,
                                           const std::string& prefix, int depth) {
  if (depth > 32) return std::nullopt;
  UnknownFieldSet fields;
  if (!fields.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) return std::nullopt;
  absl::flat_hash_map<int, int> seen;  // field number -> occurrences so far
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    const int index = seen[f.number()]++;
    if (f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const FieldDescriptor* field = type.FindFieldByNumber(f.number());
    if (field == nullptr) continue;
    std::string path = prefix + field->name();
    if (field->is_repeated()) absl::StrAppend(&path, "[", index, "]");
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!IsValidUtf8(f.length_delimited())) return path;
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      auto inner =
          FindInvalidUtf8(f.length_delimited(), *field->message_type(), path + ".", depth + 1);
      if (inner) return inner;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string ByteBufferToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

absl::Status ParseRequest(std::string_view wire, google::protobuf::Message* out) {
  out->Clear();
  if (out->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) return absl::OkStatus();
  const Descriptor& type = *out->GetDescriptor();
  out->Clear();
  if (auto path = FindInvalidUtf8(wire, type, "", 0)) {
    return absl::InvalidArgumentError(absl::StrCat(*path, " is not valid UTF-8"));
  }
  return absl::InvalidArgumentError(absl::StrCat("malformed ", type.full_name()));
}

grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& message) {
  grpc::ByteBuffer buffer;
  bool own = false;
  // Serializing an in-memory message cannot fail.
  (void)grpc::SerializationTraits<google::protobuf::Message>::Serialize(message, &buffer, &own);
  return buffer;
}

}  // namespace hr::api

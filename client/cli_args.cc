#include "client/cli_args.h"

#include "absl/strings/str_format.h"

namespace hr::client {

std::vector<std::string> MergeRepeatedFlag(const std::vector<std::string>& args,
                                           std::string_view name) {
  const std::string single = "-" + std::string(name);
  const std::string dashed = "-" + single;
  std::vector<std::string> out;
  std::vector<std::string> values;
  size_t insert_at = 0;
  bool seen = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {  // nothing after it is a flag
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (i == 0) {  // the program name
      out.push_back(a);
      continue;
    }
    std::string_view value;
    bool matched = false;
    for (const std::string& flag : {dashed, single}) {
      if (a.size() > flag.size() && a.compare(0, flag.size(), flag) == 0 && a[flag.size()] == '=') {
        value = std::string_view(a).substr(flag.size() + 1);
        matched = true;
      } else if (a == flag && i + 1 < args.size()) {
        value = args[++i];
        matched = true;
      }
      if (matched) break;
    }
    if (!matched) {
      out.push_back(a);
      continue;
    }
    if (!seen) insert_at = out.size();
    seen = true;
    if (!value.empty()) values.emplace_back(value);
  }
  if (seen) {
    std::string joined;
    for (size_t i = 0; i < values.size(); ++i) joined += (i ? "," : "") + values[i];
    out.insert(out.begin() + static_cast<std::ptrdiff_t>(insert_at), dashed + "=" + joined);
  }
  return out;
}

std::string PrintablePiece(std::string_view piece) {
  std::string out;
  for (const char c : piece) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out += absl::StrFormat("\\x%02x", u);
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace hr::client

// Small command-line helpers for the `headroom` client: repeatable list
// flags (which Abseil lacks) and printable token pieces.
#ifndef HEADROOM_CLIENT_CLI_ARGS_H_
#define HEADROOM_CLIENT_CLI_ARGS_H_

#include <string>
#include <string_view>
#include <vector>

namespace hr::client {

// Makes a list flag repeatable: every occurrence of --NAME / -NAME (as
// "--NAME=V" or "--NAME V") before a "--" is removed, and their non-empty
// values are joined with commas into one "--NAME=V1,V2,..." argument where
// the first occurrence was. (Abseil keeps only the last occurrence of a
// flag, and splits a std::vector<std::string> flag's value on commas.) A
// trailing "--NAME" with no value is left for Abseil to report; argv[0] and
// everything from "--" on are kept as they are.
std::vector<std::string> MergeRepeatedFlag(const std::vector<std::string>& args,
                                           std::string_view name);

// A token piece on one terminal line: \n, \t, \r, \\ and other bytes
// below 0x20 or equal to 0x7f escaped C-style (\xNN); everything else, UTF-8
// such as SentencePiece's "\u2581" included, kept as it is.
std::string PrintablePiece(std::string_view piece);

}  // namespace hr::client

#endif  // HEADROOM_CLIENT_CLI_ARGS_H_

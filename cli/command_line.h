#pragma once
// The one way linfuse's commands read their options (experiment, report, gradcheck, forward): cxxopts parses argv;
// a malformed option, or an argument no option takes, ends the command with exit code 2 and one line on stderr
// that names the problem and points at --help; --help prints the command's help and ends it with 0.
#include <cxxopts.hpp>
#include <optional>
#include <string>

namespace linfuse::cli {

struct CommandLine {
  cxxopts::ParseResult args;
  std::optional<int> exit_code;   // set when the command should end now, with this code
};

// `command` as the user typed it ("linfuse report"); `help` what --help prints (the options' help, or more).
CommandLine parse_command_line(cxxopts::Options& options, int argc, char** argv, const std::string& command,
                               const std::string& help);

}  // namespace linfuse::cli

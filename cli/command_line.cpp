#include "cli/command_line.h"

#include <cstdio>
#include <exception>

namespace linfuse::cli {

CommandLine parse_command_line(cxxopts::Options& options, int argc, char** argv, const std::string& command,
                               const std::string& help) {
  CommandLine line;
  auto usage_error = [&](const std::string& message) {
    std::fprintf(stderr, "%s: %s (see '%s --help')\n", command.c_str(), message.c_str(), command.c_str());
    line.exit_code = 2;
    return line;
  };
  try {
    line.args = options.parse(argc, argv);
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }
  if (line.args.count("help")) {
    std::printf("%s", help.c_str());
    line.exit_code = 0;
    return line;
  }
  if (!line.args.unmatched().empty()) return usage_error("unexpected argument '" + line.args.unmatched().front() + "'");
  return line;
}

}  // namespace linfuse::cli

#include "nn/file_checks.h"

#include <sys/stat.h>

#include <filesystem>

namespace linfuse {

std::string input_named_by(const std::string& output, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (output.empty() || !fs::exists(output, ec)) return "";
  for (const std::string& input : inputs)
    if (!input.empty() && fs::exists(input, ec) && fs::equivalent(output, input, ec)) return input;   // same device and inode
  return "";
}

std::string non_regular_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return "";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISDIR(st.st_mode)) return "a folder";
  return "a special file";
}

}  // namespace linfuse

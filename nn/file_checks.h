#pragma once
// Checks on paths that a command makes before it opens its inputs or writes its output, shared by `linfuse merge`
// and `linfuse forward`: an output that would replace one of the inputs, and inputs that are not regular files.
#include <string>
#include <vector>

namespace linfuse {

// The first of `inputs` that `output` names -- the same file or folder, also through a symbolic or a hard link --
// or "" when none does (or when `output` does not exist yet). Writing `output` would replace that input.
std::string input_named_by(const std::string& output, const std::vector<std::string>& inputs);

// What `path` is when it exists but is not a regular file: "a FIFO", "a socket", "a character device", "a block
// device", "a folder" (else "a special file"); "" for a regular file (symbolic links followed) or a path that does not exist (opening it
// then says why). Found with stat(2), without opening the file: opening a FIFO for reading blocks until some
// other process opens it for writing, and a device may never end.
std::string non_regular_kind(const std::string& path);

}  // namespace linfuse

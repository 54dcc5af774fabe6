#pragma once
// Atomic file writing, used by every writer in linfuse (safetensors checkpoints, JSON configs, reports):
// readers of `path` see either the old file or the complete new one, never a partial file, even if the
// process dies half way or the disk fills up.
//
// How: the bytes go to a temporary file in the same directory as `path` (".<name>.tmp.<pid>.<n>"; same
// directory so that rename(2) cannot cross file systems), which commit() flushes to disk (fsync) and renames
// over `path`; the directory is then fsynced so the rename itself survives a crash. Until commit() the
// target is untouched; an AtomicFile destroyed without commit() (an exception unwinding) deletes its
// temporary file, and so does an interruption by SIGINT, SIGTERM or SIGHUP (nn/temporary_files.h). A process killed
// by SIGKILL (or a power cut) leaves its ".tmp" file behind; the next AtomicFile for the same target deletes the
// temporaries of processes that no longer run.
//
// Missing parent directories of `path` are created: every caller writes into run directories
// ("runs/<experiment>/<task>/") that may not exist yet, and failing after hours of training because of a
// missing folder is worse than creating one from a mistyped path.
//
// New files get mode 0666 minus the umask, like any file created with fopen; the mode of a replaced file
// is not carried over. A reader that memory-mapped the old file keeps seeing the old content (rename
// replaces the directory entry, not the old inode), so checkpoints can be rewritten while they are in use.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "nn/temporary_files.h"

namespace linfuse {

class AtomicFile {
 public:
  // Creates the parent directories and the temporary file; throws std::runtime_error naming `path` if
  // either cannot be created.
  explicit AtomicFile(std::string path);
  ~AtomicFile();   // not committed: closes and deletes the temporary file
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends `bytes` at the current end of what was appended so far.
  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Writes at an absolute byte offset without moving the append position (for writers that lay out a
  // file first and fill it in any order).
  void write_at(uint64_t offset, const void* data, size_t bytes);
  // Sets the file's length (extends with zeros or truncates).
  void resize(uint64_t bytes);

  // fsync, close, rename over the target, fsync the directory. After commit() the object is inert.
  void commit();
  // Deletes the temporary file now (the destructor does the same).
  void discard() noexcept;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  bool committed() const { return committed_; }

 private:
  [[noreturn]] void fail(const std::string& what, int error_number) const;

  std::string path_;
  std::string temp_path_;
  InterruptCleanup cleanup_;   // deletes temp_path_ if the process is interrupted
  int fd_ = -1;
  uint64_t append_offset_ = 0;
  bool committed_ = false;
};

// Writes the whole of `bytes` to `path` atomically (see AtomicFile).
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace linfuse

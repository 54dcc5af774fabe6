#include "nn/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace linfuse {
namespace {

namespace fs = std::filesystem;

std::string advice_for(int error_number) {
  switch (error_number) {
    case ENOSPC:
    case EDQUOT: return "; free disk space or write somewhere else";
    case EACCES:
    case EPERM:
    case EROFS: return "; check that the directory is writable";
    default: return "";
  }
}

// Directory part of `path` ("." when there is none).
fs::path parent_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

std::atomic<uint64_t> temp_counter{0};

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  fs::path target(path_);
  if (path_.empty() || !target.has_filename())
    throw std::runtime_error("[AtomicFile] '" + path_ + "' is not a file path (it names no file)");
  fs::path directory = parent_of(path_);
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec)
    throw std::runtime_error("[AtomicFile] cannot create directory '" + directory.string() + "' for '" + path_ +
                             "': " + ec.message() + advice_for(ec.value()));
  remove_stale_temporaries(path_);   // of earlier runs that were killed
  // The same directory as the target, so that rename() is atomic; a leading dot keeps it out of listings.
  // Registered before it exists, so that an interruption at any moment deletes it (nn/temporary_files.h).
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp_path_ = (directory / temporary_name(path_, long(::getpid()), temp_counter.fetch_add(1))).string();
    cleanup_ = InterruptCleanup(temp_path_, /*is_folder=*/false);
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  int error_number = errno;
  cleanup_.release();
  throw std::runtime_error("[AtomicFile] cannot create temporary file '" + temp_path_ + "' for '" + path_ +
                           "': " + std::strerror(error_number) + advice_for(error_number));
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::fail(const std::string& what, int error_number) const {
  throw std::runtime_error("[AtomicFile] " + what + " '" + path_ + "' (temporary file '" + temp_path_ +
                           "'): " + std::strerror(error_number) + advice_for(error_number));
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t bytes) {
  if (fd_ < 0) throw std::logic_error("[AtomicFile] write to '" + path_ + "' after commit or discard");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::pwrite(fd_, p, bytes, (off_t)offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", errno);
    }
    if (n == 0) fail("cannot write", EIO);
    p += n;
    bytes -= (size_t)n;
    offset += (uint64_t)n;
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  write_at(append_offset_, data, bytes);
  append_offset_ += bytes;
}

void AtomicFile::resize(uint64_t bytes) {
  if (fd_ < 0) throw std::logic_error("[AtomicFile] resize of '" + path_ + "' after commit or discard");
  if (::ftruncate(fd_, (off_t)bytes) != 0) fail("cannot resize", errno);
}

void AtomicFile::commit() {
  if (fd_ < 0) throw std::logic_error("[AtomicFile] commit of '" + path_ + "' after commit or discard");
  if (::fsync(fd_) != 0) fail("cannot flush", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    int error_number = errno;
    ::unlink(temp_path_.c_str());
    cleanup_.release();
    fail("cannot close", error_number);
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int error_number = errno;
    ::unlink(temp_path_.c_str());
    cleanup_.release();
    fail("cannot rename the temporary file to", error_number);
  }
  cleanup_.release();
  committed_ = true;
  // Make the rename durable. Best effort: the new file is already in place, and some file systems refuse
  // fsync on directories, so a failure here is not reported.
  int dir_fd = ::open(parent_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void AtomicFile::discard() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
  cleanup_.release();
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace linfuse

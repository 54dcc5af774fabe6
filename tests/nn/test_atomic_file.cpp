// AtomicFile: the target changes only on commit, and an abandoned write leaves nothing behind.
#include <catch2/catch.hpp>
#include <stdexcept>

#include "io_test_helpers.h"
#include "nn/atomic_file.h"

using namespace linfuse;
using namespace linfuse::testing;

TEST_CASE("write_file_atomic replaces the file and leaves no temporary file", "[atomic]") {
  ScratchDir dir("atomic_replace");
  std::string path = dir.file("config.json");
  write_file_atomic(path, "{\"old\": true}");
  write_file_atomic(path, "{\"new\": true}");
  CHECK(read_bytes(path) == "{\"new\": true}");
  CHECK(dir.listing() == std::vector<std::string>{"config.json"});
}

TEST_CASE("write_file_atomic creates missing parent directories", "[atomic]") {
  ScratchDir dir("atomic_parents");
  std::string path = dir.file("runs/a/b/report.md");
  write_file_atomic(path, "# report\n");
  CHECK(read_bytes(path) == "# report\n");
  write_file_atomic("relative_atomic_test_file.txt", "x");   // a bare file name: the current directory
  CHECK(read_bytes("relative_atomic_test_file.txt") == "x");
  std::filesystem::remove("relative_atomic_test_file.txt");
}

TEST_CASE("an AtomicFile abandoned by an exception leaves the target untouched and no temporary file", "[atomic]") {
  ScratchDir dir("atomic_abandon");
  std::string path = dir.file("model.bin");
  write_file_atomic(path, "original");
  try {
    AtomicFile file(path);
    file.write("partial new content");
    CHECK(std::filesystem::exists(file.temp_path()));
    CHECK(std::filesystem::path(file.temp_path()).parent_path() == dir.path());
    throw std::runtime_error("simulated failure half way");
  } catch (const std::runtime_error&) {
  }
  CHECK(read_bytes(path) == "original");
  CHECK(dir.listing() == std::vector<std::string>{"model.bin"});
}

TEST_CASE("AtomicFile positioned writes and resize lay out a file before it is published", "[atomic]") {
  ScratchDir dir("atomic_layout");
  std::string path = dir.file("laid_out.bin");
  {
    AtomicFile file(path);
    file.write("head");
    file.resize(12);
    file.write_at(8, "tail", 4);
    file.write_at(4, "mid_", 4);
    CHECK_FALSE(std::filesystem::exists(path));
    file.commit();
    CHECK(file.committed());
    CHECK_THROWS_AS(file.write("more"), std::logic_error);
  }
  CHECK(read_bytes(path) == "headmid_tail");
}

TEST_CASE("AtomicFile errors name the target and the reason", "[atomic]") {
  ScratchDir dir("atomic_errors");
  write_file_atomic(dir.file("plain_file"), "not a directory");
  // A parent that is a file cannot be created as a directory.
  std::string impossible = dir.file("plain_file/child.json");
  CHECK_THROWS_WITH(write_file_atomic(impossible, "x"),
                    Catch::Contains("cannot create directory") && Catch::Contains(impossible));
  CHECK_THROWS_WITH(write_file_atomic(dir.file("sub/"), "x"), Catch::Contains("is not a file path"));
}

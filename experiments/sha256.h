#pragma once
// SHA-256 (FIPS 180-4) of bytes and of files, as lowercase hex: what `sha256sum` prints. The base checkpoints'
// manifests record one per file (base_checkpoint.h), so a shipped file that changed is found before it is used.
#include <filesystem>
#include <string>
#include <string_view>

namespace linfuse::experiments {

std::string sha256_hex(std::string_view bytes);
// Reads the file in chunks; throws std::runtime_error naming it when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace linfuse::experiments

// Keeps the documents' line references honest: docs/reading.md and docs/tutorial-l-lora.md point at lines of the
// code ("peft/lora.cpp lines 58-68"), and each such reference carries a hidden marker
//   <!-- check: peft/lora.cpp:58 "Tensor LoraAdapter::forward_adapted" -->
// saying what that line must contain. This program (the ctest test docs_line_references) reads every docs/*.md and
// fails, naming the document, the file and the line, when a marked line no longer holds its text: the code moved,
// and the document must be updated with it.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: check_line_references SOURCE_DIR\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const std::regex marker(R"re(<!-- check: ([^ :]+):([0-9]+) "([^"]+)" -->)re");
  int checked = 0, failed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root / "docs")) {
    if (entry.path().extension() != ".md") continue;
    std::ifstream doc(entry.path());
    std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
    for (std::sregex_iterator it(text.begin(), text.end(), marker), end; it != end; ++it) {
      const std::string file = (*it)[1], expected = (*it)[3];
      const long line_number = std::stol((*it)[2]);
      std::ifstream source(root / file);
      std::string line;
      for (long n = 0; n < line_number && std::getline(source, line); ++n) {
      }
      ++checked;
      if (!source || line.find(expected) == std::string::npos) {
        ++failed;
        std::printf("%s: %s line %ld should contain \"%s\" but is \"%s\": the code moved; update the line numbers "
                    "of this reference (and its marker)\n",
                    entry.path().filename().c_str(), file.c_str(), line_number, expected.c_str(),
                    source ? line.c_str() : "(no such line or file)");
      }
    }
  }
  std::printf("%d line references checked, %d wrong\n", checked, failed);
  return failed == 0 && checked > 0 ? 0 : 1;
}

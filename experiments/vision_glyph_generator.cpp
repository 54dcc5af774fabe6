// The glyph generator of the vision suite: capital letters of a built-in 5 x 7 bitmap font.
#include <array>
#include <cmath>
#include <numbers>

#include "experiments/image_canvas.h"
#include "experiments/vision_generators.h"

namespace linfuse::data {
namespace {

constexpr int kFontWidth = 5, kFontHeight = 7;

// One glyph per class, in the order of kGlyphLetters ("ABCEFHKLPT"); '#' is an ink cell. Several pairs
// share most cells on purpose (E/F, B/P, P/F, H/K), which keeps the task from being trivial.
constexpr std::array<std::array<const char*, kFontHeight>, kGlyphClasses> kFont = {{
    {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},   // A
    {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},   // B
    {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},   // C
    {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},   // E
    {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},   // F
    {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},   // H
    {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},   // K
    {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},   // L
    {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},   // P
    {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},   // T
}};

}  // namespace

// glyphs: one capital letter of kGlyphLetters from the 5 x 7 bitmap font above; each ink cell is drawn as a
// square (side = thickness x cell) joined to its horizontal and vertical ink neighbours, so cells merge
// into strokes (diagonal neighbours touch at a corner, as in a bitmap font).
// Varies: height (14..21 px, the cell size is height / 7), aspect (width x 0.85..1.15), rotation (-12..12
// degrees), shear (-0.2..0.2), stroke thickness (0.95..1.3 cells), position (center within +-3 px of the
// image center, inside the image), background, ink level, pixel noise (std 0.03..0.15).
void draw_glyph(int64_t label, Generator& gen, float* pixels) {
  const auto& bitmap = kFont[size_t(label)];
  double cell = uniform(gen, 14.0, 21.0) / kFontHeight;
  double stretch = uniform(gen, 0.85, 1.15);
  double angle = uniform(gen, -12.0, 12.0) * std::numbers::pi / 180, shear = uniform(gen, -0.2, 0.2);
  double half_side = 0.5 * uniform(gen, 0.95, 1.3);   // of an ink square, in cells
  // The glyph's half extents in pixels (a loose bound that covers rotation and shear).
  double half_width = 0.5 * kFontWidth * cell * stretch, half_height = 0.5 * kFontHeight * cell;
  double reach = std::hypot(half_width + std::abs(shear) * half_height, half_height) + cell * 0.3;
  double jitter_x = std::clamp(kImageSide / 2.0 - half_width - std::abs(shear) * half_height - 1.0, 0.0, 3.0);
  double jitter_y = std::clamp(kImageSide / 2.0 - half_height - 1.0, 0.0, 3.0);
  Point center{kImageSide / 2.0 + uniform(gen, -jitter_x, jitter_x), kImageSide / 2.0 + uniform(gen, -jitter_y, jitter_y)};
  Photometry photometry = random_photometry(gen, 0.03, 0.15);

  double c = std::cos(angle), s = std::sin(angle);
  Canvas canvas;
  canvas.fill(
      [&](Point p) {
        // Pixel -> glyph frame: undo translation, rotation, shear, then scale to cells (origin at top left).
        double dx = p.x - center.x, dy = p.y - center.y;
        double rx = c * dx + s * dy, ry = -s * dx + c * dy;
        rx -= shear * ry;
        double u = rx / (cell * stretch) + kFontWidth / 2.0, v = ry / cell + kFontHeight / 2.0;
        // Only ink cells next to the cell under the pixel can be within the half pixel that matters for
        // anti-aliasing (boxes reach at most one cell from their center, a cell is >= 2 px); farther away
        // the distance saturates.
        int cell_col = int(std::floor(u)), cell_row = int(std::floor(v));
        double best = 1.0;
        for (int row = std::max(0, cell_row - 1); row <= std::min(kFontHeight - 1, cell_row + 1); ++row)
          for (int col = std::max(0, cell_col - 1); col <= std::min(kFontWidth - 1, cell_col + 1); ++col)
            if (bitmap[size_t(row)][col] == '#') {
              // The box reaches the center of each ink neighbour, so strokes have no seams between cells.
              auto ink = [&](int r, int c) {
                return r >= 0 && r < kFontHeight && c >= 0 && c < kFontWidth && bitmap[size_t(r)][c] == '#';
              };
              double left = ink(row, col - 1) ? 1.0 : half_side, right = ink(row, col + 1) ? 1.0 : half_side;
              double up = ink(row - 1, col) ? 1.0 : half_side, down = ink(row + 1, col) ? 1.0 : half_side;
              Point center_offset{u - (col + 0.5 + (right - left) / 2), v - (row + 0.5 + (down - up) / 2)};
              best = std::min(best, box_distance(center_offset, (left + right) / 2, (up + down) / 2));
            }
        return best * cell * std::min(1.0, stretch);
      },
      center, reach);
  render(canvas, photometry, gen, pixels);
}

}  // namespace linfuse::data

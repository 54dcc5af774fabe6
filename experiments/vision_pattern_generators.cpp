// Full-field pattern generators of the vision suite: oriented gratings and textures.
#include <cmath>
#include <numbers>

#include "experiments/image_canvas.h"
#include "experiments/vision_generators.h"

namespace linfuse::data {
namespace {

constexpr double kPi = std::numbers::pi;

// Distance from x to the nearest multiple of `period`.
double distance_to_lattice(double x, double period) { return std::abs(x - period * std::round(x / period)); }

// Local coordinates of pixel-space point p: relative to `center`, rotated by -angle.
Point rotate_into(Point p, Point center, double angle) {
  double dx = p.x - center.x, dy = p.y - center.y, c = std::cos(angle), s = std::sin(angle);
  return Point{c * dx + s * dy, -s * dx + c * dy};
}

}  // namespace

// gratings: a sinusoidal grating whose stripes run at angle 22.5 * label degrees (0 = horizontal stripes,
// 90 = vertical, counter-clockwise on screen), seen through a Gaussian window:
//   pixel = mean + amplitude * window(p) * cos(2 pi <p - c, n> / period + phase) + noise,
// n the unit normal of the stripes. Varies: period (4..9 px), phase (-60..60 degrees, so a bright stripe
// passes near the window center: orientation is then visible in the mean image too), window center c
// (image center +- 3 px) and width (sigma 5..12 px), mean (0.35..0.6), amplitude (0.2..0.5), pixel noise
// (std 0.04..0.16). Neighbouring classes differ by only 22.5 degrees.
void draw_grating(int64_t label, Generator& gen, float* pixels) {
  const double angle = kPi * double(label) / kGratingClasses;
  const double normal_x = std::sin(angle), normal_y = std::cos(angle);   // y grows downwards
  double period = uniform(gen, 4.0, 9.0), phase = uniform(gen, -kPi / 3, kPi / 3);
  Point center{kImageSide / 2.0 + uniform(gen, -3, 3), kImageSide / 2.0 + uniform(gen, -3, 3)};
  double sigma = uniform(gen, 5.0, 12.0), mean = uniform(gen, 0.35, 0.6), amplitude = uniform(gen, 0.2, 0.5);
  double noise_std = uniform(gen, 0.04, 0.16);

  double values[kImagePixels];
  for (int64_t row = 0; row < kImageSide; ++row)
    for (int64_t col = 0; col < kImageSide; ++col) {
      double dx = col + 0.5 - center.x, dy = row + 0.5 - center.y;
      double window = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      double along_normal = dx * normal_x + dy * normal_y;
      values[row * kImageSide + col] = mean + amplitude * window * std::cos(2 * kPi * along_normal / period + phase);
    }
  add_noise_and_store(values, noise_std, gen, pixels);
}

// textures: a periodic (or random) pattern filling the image, class = the pattern:
//   0 checkerboard (squares of side P, soft edges), 1 grid (lines 1..2 px wide every P px both ways),
//   2 dotted (a square lattice of disks, radius 1..P/3), 3 brick (mortar lines every P px, joints every 2P
//   px shifted by P in alternate rows), 4 zigzag (stripes every P px bent into a triangle wave of
//   amplitude P/3..P/2), 5 speckled (random blobs: a 10 x 10 grid of uniform values, bilinearly upsampled
//   and contrast-stretched).
// Varies: period P (5..8 px), the anchor of the lattice (image center +- 1.5 px, so the pattern's phase near
// the center is nearly fixed and class means differ), rotation (-10..10 degrees), line width, background,
// ink level, pixel noise (std 0.02..0.12).
void draw_texture(int64_t label, Generator& gen, float* pixels) {
  double period = uniform(gen, 5.0, 8.0), angle = uniform(gen, -kPi / 18, kPi / 18);
  Point anchor{kImageSide / 2.0 + uniform(gen, -1.5, 1.5), kImageSide / 2.0 + uniform(gen, -1.5, 1.5)};
  double width = uniform(gen, 1.0, 2.0), radius = uniform(gen, 1.0, period / 3);
  double zigzag_amplitude = uniform(gen, period / 3, period / 2);
  double speckle[11][11];
  for (auto& speckle_row : speckle)
    for (double& value : speckle_row) value = gen.next_uniform();
  Photometry photometry = random_photometry(gen);

  Canvas canvas;
  for (int64_t row = 0; row < kImageSide; ++row)
    for (int64_t col = 0; col < kImageSide; ++col) {
      Point local = rotate_into(Point{col + 0.5, row + 0.5}, anchor, angle);
      double u = local.x, v = local.y, ink = 0;
      switch (label) {
        case 0:
          ink = std::clamp(0.5 + 3.0 * std::cos(kPi * u / period) * std::cos(kPi * v / period), 0.0, 1.0);
          break;
        case 1:
          ink = std::max(coverage(distance_to_lattice(u, period) - width / 2),
                         coverage(distance_to_lattice(v, period) - width / 2));
          break;
        case 2:
          ink = coverage(std::hypot(distance_to_lattice(u, period), distance_to_lattice(v, period)) - radius);
          break;
        case 3: {
          double brick_row = std::floor(v / period + 0.5);   // mortar lines at v = (k + 1/2) P
          double joint_offset = std::fmod(std::abs(brick_row), 2.0) * period;
          ink = std::max(coverage(distance_to_lattice(v - period / 2, period) - width / 2),
                         coverage(distance_to_lattice(u - joint_offset, 2 * period) - width / 2));
          break;
        }
        case 4: {
          double phase = u / period - std::floor(u / period);                  // [0, 1)
          double triangle = 4 * std::abs(phase - 0.5) - 1;                     // [-1, 1], period P
          double slope = 4 * zigzag_amplitude / period;
          double vertical = distance_to_lattice(v - zigzag_amplitude * triangle, period);
          ink = coverage(vertical / std::sqrt(1 + slope * slope) - width / 2);
          break;
        }
        default: {
          double gx = (col + 0.5) / kImageSide * 10, gy = (row + 0.5) / kImageSide * 10;
          int ix = std::min(int(gx), 9), iy = std::min(int(gy), 9);
          double fx = gx - ix, fy = gy - iy;
          double value = (1 - fy) * ((1 - fx) * speckle[iy][ix] + fx * speckle[iy][ix + 1]) +
                         fy * ((1 - fx) * speckle[iy + 1][ix] + fx * speckle[iy + 1][ix + 1]);
          ink = std::clamp(0.5 + 2.5 * (value - 0.5), 0.0, 1.0);
        }
      }
      canvas.at(row, col) = ink;
    }
  render(canvas, photometry, gen, pixels);
}

}  // namespace linfuse::data

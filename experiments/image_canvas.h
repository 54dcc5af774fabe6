#pragma once
// Drawing helpers for the procedural vision tasks (internal to experiments/). Shapes are given as signed
// distance functions in pixel units (negative inside) and rasterized with one pixel of anti-aliasing; the
// nuisances every generator shares (background and ink levels, Gaussian pixel noise) are applied last.
// Coordinates: x to the right, y down, pixel (row, col) has its center at (col + 0.5, row + 0.5).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "experiments/vision_tasks.h"
#include "tensor/random.h"

namespace linfuse::data {

struct Point {
  double x = 0, y = 0;
};

inline double uniform(Generator& gen, double low, double high) { return low + (high - low) * gen.next_uniform(); }
inline int64_t uniform_int(Generator& gen, int64_t low, int64_t high_exclusive) {
  return low + int64_t(gen.next_u64() % uint64_t(high_exclusive - low));
}

// Fraction of a pixel covered by a shape at signed distance `distance` (pixels) from its center.
inline double coverage(double distance) { return std::clamp(0.5 - distance, 0.0, 1.0); }

// An ink map (28 x 28, values in [0, 1], 1 = full ink) that shapes are composited onto with max().
class Canvas {
 public:
  Canvas() : ink_(kImagePixels, 0.0) {}

  double& at(int64_t row, int64_t col) { return ink_[row * kImageSide + col]; }
  const std::vector<double>& ink() const { return ink_; }

  // Adds the shape `signed_distance(Point) -> pixels` with the given intensity, evaluated only on the pixels
  // whose centers lie within `reach` pixels of `center` (the caller's bound on the shape's extent).
  template <class SignedDistance>
  void fill(const SignedDistance& signed_distance, Point center, double reach, double intensity = 1.0) {
    int64_t col0 = std::max<int64_t>(0, int64_t(std::floor(center.x - reach - 1)));
    int64_t col1 = std::min<int64_t>(kImageSide - 1, int64_t(std::ceil(center.x + reach + 1)));
    int64_t row0 = std::max<int64_t>(0, int64_t(std::floor(center.y - reach - 1)));
    int64_t row1 = std::min<int64_t>(kImageSide - 1, int64_t(std::ceil(center.y + reach + 1)));
    for (int64_t row = row0; row <= row1; ++row)
      for (int64_t col = col0; col <= col1; ++col) {
        double cover = coverage(signed_distance(Point{col + 0.5, row + 0.5})) * intensity;
        double& pixel = at(row, col);
        pixel = std::max(pixel, cover);
      }
  }

 private:
  std::vector<double> ink_;
};

// The shared photometric nuisances of a procedural image.
struct Photometry {
  double background = 0;   // pixel value where there is no ink
  double foreground = 1;   // pixel value of full ink
  double noise_std = 0;    // standard deviation of additive Gaussian pixel noise
};

// background in [0, background_high], foreground in [0.6, 1], noise std in [noise_low, noise_high].
Photometry random_photometry(Generator& gen, double noise_low = 0.02, double noise_high = 0.12,
                             double background_high = 0.3);

// Fills `count` standard normal values from a key drawn from `gen` (four per Philox block, Box-Muller).
void fill_standard_normal(Generator& gen, double* out, int64_t count);

// pixels[i] = clamp(background + (foreground - background) * ink[i] + noise, 0, 1): the image (1, 28, 28).
void render(const Canvas& canvas, const Photometry& photometry, Generator& gen, float* pixels);

// Adds Gaussian noise of standard deviation `noise_std` to 784 values and writes them clamped to [0, 1].
void add_noise_and_store(const double* values, double noise_std, Generator& gen, float* pixels);

// Signed distances (negative inside), in the units of the point given.
double circle_distance(Point p, double radius);
double box_distance(Point p, double half_width, double half_height);
double polygon_distance(Point p, const std::vector<Point>& vertices);   // any simple polygon, either winding

// A similarity transform from shape-local units to pixels: scale, rotation, then translation to `center`.
struct Placement {
  Point center;
  double scale = 1;      // pixels per local unit
  double angle = 0;      // radians, counter-clockwise on screen
  double stretch = 1;    // local x is stretched by this factor relative to local y (aspect jitter)

  // The local point that lands on pixel-space point p.
  Point to_local(Point p) const {
    double dx = p.x - center.x, dy = p.y - center.y;
    double c = std::cos(angle), s = std::sin(angle);
    double u = c * dx - s * dy, v = s * dx + c * dy;
    return Point{u / (scale * stretch), v / scale};
  }
  // A local distance converted to pixels (exact for stretch = 1; the smaller axis scale otherwise).
  double to_pixels(double local_distance) const { return local_distance * scale * std::min(1.0, stretch); }
};

}  // namespace linfuse::data

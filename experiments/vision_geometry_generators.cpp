// Geometric generators of the vision suite: shapes, dot counting, blob position.
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "experiments/image_canvas.h"
#include "experiments/vision_generators.h"

namespace linfuse::data {
namespace {

constexpr double kPi = std::numbers::pi;

std::vector<Point> regular_polygon(int sides, double radius, double first_angle) {
  std::vector<Point> vertices;
  for (int k = 0; k < sides; ++k) {
    double a = first_angle + 2 * kPi * k / sides;
    vertices.push_back({radius * std::cos(a), radius * std::sin(a)});
  }
  return vertices;
}

std::vector<Point> star_polygon(int points, double outer, double inner) {
  std::vector<Point> vertices;
  for (int k = 0; k < 2 * points; ++k) {
    double a = -kPi / 2 + kPi * k / points, r = k % 2 ? inner : outer;
    vertices.push_back({r * std::cos(a), r * std::sin(a)});
  }
  return vertices;
}

// The classic parametric heart, point down (y grows downwards), scaled to fit the unit disk.
std::vector<Point> heart_polygon() {
  std::vector<Point> vertices;
  for (int k = 0; k < 28; ++k) {
    double t = 2 * kPi * k / 28, s = std::sin(t);
    double x = 16 * s * s * s, y = 13 * std::cos(t) - 5 * std::cos(2 * t) - 2 * std::cos(3 * t) - std::cos(4 * t);
    vertices.push_back({x / 17.0, -(y + 2.5) / 17.0});
  }
  return vertices;
}

// Pointing to +x: a shaft from x = -1 and a head from x = 0.15 to the tip at x = 1.
const std::vector<Point> kArrow = {{-1, -0.2}, {0.15, -0.2}, {0.15, -0.6}, {1, 0}, {0.15, 0.6}, {0.15, 0.2}, {-1, 0.2}};
const std::vector<Point> kTriangle = regular_polygon(3, 1.0, -kPi / 2);
const std::vector<Point> kStar = star_polygon(5, 1.0, 0.42);
const std::vector<Point> kHeart = heart_polygon();

// Signed distance of shape `label` at local point p (local units; every shape fits the unit disk).
double shape_distance(int64_t label, Point p) {
  switch (label) {
    case 0: return circle_distance(p, 0.9);
    case 1: return box_distance(p, 0.72, 0.72);
    case 2: return polygon_distance(p, kTriangle);
    case 3: return std::min(box_distance(p, 0.95, 0.28), box_distance(p, 0.28, 0.95));
    case 4: return polygon_distance(p, kStar);
    case 5: return std::max(circle_distance(p, 0.9), -circle_distance(Point{p.x - 0.45, p.y}, 0.72));
    case 6: return polygon_distance(p, kHeart);
    default: return polygon_distance(p, kArrow);
  }
}

}  // namespace

// shapes: one filled or outlined geometric shape, class = which shape:
//   0 circle, 1 square, 2 triangle, 3 cross (plus sign), 4 five-pointed star, 5 crescent, 6 heart, 7 arrow.
// Varies: size (shape radius 6..11 px), position (center within +-4 px of the image center, inside the
// image), rotation (-40..40 degrees from the upright pose), aspect (x stretched by 0.85..1.15), style
// (filled with p = 0.6, else an outline 1.3..2.6 px thick), background 0..0.3, ink 0.6..1, Gaussian pixel
// noise (std 0.02..0.12).
void draw_shape(int64_t label, Generator& gen, float* pixels) {
  Placement placement;
  placement.scale = uniform(gen, 6.0, 11.0);
  placement.stretch = uniform(gen, 0.85, 1.15);
  placement.angle = uniform(gen, -40.0, 40.0) * kPi / 180;
  double reach = placement.scale * std::max(1.0, placement.stretch);
  // Within +-4 px of the center, and inside the image where the shape allows it.
  double jitter = std::clamp(kImageSide / 2.0 - reach - 1.0, 0.0, 4.0);
  placement.center = {kImageSide / 2.0 + uniform(gen, -jitter, jitter), kImageSide / 2.0 + uniform(gen, -jitter, jitter)};
  bool filled = gen.next_uniform() < 0.6;
  double thickness = uniform(gen, 1.3, 2.6);
  Photometry photometry = random_photometry(gen);

  Canvas canvas;
  canvas.fill(
      [&](Point p) {
        double distance = placement.to_pixels(shape_distance(label, placement.to_local(p)));
        return filled ? distance : std::abs(distance) - thickness / 2;
      },
      placement.center, reach + thickness);
  render(canvas, photometry, gen, pixels);
}

// dot_count: class k shows k + 1 dots (1..8) that do not touch (gaps of at least 1.5 px between edges) on
// a nearly black background (0..0.04), so total brightness carries the count but only roughly.
// Varies: each dot's radius (1.4..2.4 px), position (uniform, rejection-sampled; the whole draw restarts if
// the dots do not fit), and intensity (0.7..1 of the ink level), ink level (0.6..1), pixel noise (std
// 0.02..0.12). Neighbouring counts overlap in total ink because radii and intensities vary.
void draw_dots(int64_t label, Generator& gen, float* pixels) {
  const int64_t count = label + 1;
  struct Dot { Point center; double radius; };
  std::vector<Dot> dots;
  while (int64_t(dots.size()) < count) {
    dots.clear();
    for (int64_t attempt = 0; attempt < 400 && int64_t(dots.size()) < count; ++attempt) {
      double radius = uniform(gen, 1.4, 2.4);
      Point center{uniform(gen, radius + 1, kImageSide - radius - 1), uniform(gen, radius + 1, kImageSide - radius - 1)};
      bool fits = true;
      for (const Dot& other : dots)
        fits = fits && std::hypot(center.x - other.center.x, center.y - other.center.y) >= radius + other.radius + 1.5;
      if (fits) dots.push_back({center, radius});
    }
  }
  Photometry photometry = random_photometry(gen, 0.02, 0.12, 0.04);
  Canvas canvas;
  for (const Dot& dot : dots) {
    double intensity = uniform(gen, 0.7, 1.0);
    canvas.fill([&](Point p) { return circle_distance(Point{p.x - dot.center.x, p.y - dot.center.y}, dot.radius); },
                dot.center, dot.radius, intensity);
  }
  render(canvas, photometry, gen, pixels);
}

// position: one bright blob whose center lies in cell `label` of a 3 x 3 grid (row-major: 0 top left,
// 4 center, 8 bottom right), uniformly anywhere inside that cell (and >= 1.5 px inside the image), so blobs
// near a cell border are hard.
// Varies: the blob (a disk of radius 1.8..3.2 px or a square of half-side 1.6..2.8 px), its intensity
// (0.8..1), 1..3 distractor disks anywhere (radius 0.8..1.6 px, intensity 0.2..0.45), background, ink
// level, pixel noise (std 0.04..0.15).
void draw_position_blob(int64_t label, Generator& gen, float* pixels) {
  const double cell = double(kImageSide) / 3;
  const int64_t row = label / 3, col = label % 3;
  // Anywhere in the cell, but at least 1.5 px inside the image so that the blob is never mostly cut off.
  Point center{uniform(gen, std::max(1.5, col * cell), std::min(kImageSide - 1.5, (col + 1) * cell)),
               uniform(gen, std::max(1.5, row * cell), std::min(kImageSide - 1.5, (row + 1) * cell))};
  bool disk = gen.next_uniform() < 0.5;
  double size = disk ? uniform(gen, 1.8, 3.2) : uniform(gen, 1.6, 2.8);
  double intensity = uniform(gen, 0.8, 1.0);
  Photometry photometry = random_photometry(gen, 0.04, 0.15);

  Canvas canvas;
  int64_t distractors = uniform_int(gen, 1, 4);
  for (int64_t d = 0; d < distractors; ++d) {
    Point at{uniform(gen, 1.0, kImageSide - 1.0), uniform(gen, 1.0, kImageSide - 1.0)};
    double radius = uniform(gen, 0.8, 1.6), faint = uniform(gen, 0.2, 0.45);
    canvas.fill([&](Point p) { return circle_distance(Point{p.x - at.x, p.y - at.y}, radius); }, at, radius, faint);
  }
  canvas.fill(
      [&](Point p) {
        Point q{p.x - center.x, p.y - center.y};
        return disk ? circle_distance(q, size) : box_distance(q, size, size);
      },
      center, size * 1.5, intensity);
  render(canvas, photometry, gen, pixels);
}

}  // namespace linfuse::data

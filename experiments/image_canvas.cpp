#include "experiments/image_canvas.h"

#include <numbers>

namespace linfuse::data {

Photometry random_photometry(Generator& gen, double noise_low, double noise_high, double background_high) {
  Photometry photometry;
  photometry.background = uniform(gen, 0.0, background_high);
  photometry.foreground = uniform(gen, 0.6, 1.0);
  photometry.noise_std = uniform(gen, noise_low, noise_high);
  return photometry;
}

void fill_standard_normal(Generator& gen, double* out, int64_t count) {
  // One key from the generator, then a private Philox counter: 4 normals per block instead of 1 per call.
  uint64_t key = gen.next_u64();
  for (int64_t i = 0; i < count; i += 4) {
    uint32_t r[4];
    philox4x32(uint64_t(i / 4), 0x5EED, key, r);
    for (int pair = 0; pair < 2; ++pair) {
      double u1 = (double(r[2 * pair]) + 1.0) * 0x1.0p-32;   // (0, 1]: log() stays finite
      double u2 = double(r[2 * pair + 1]) * 0x1.0p-32;
      double radius = std::sqrt(-2.0 * std::log(u1)), theta = 2.0 * std::numbers::pi * u2;
      if (i + 2 * pair < count) out[i + 2 * pair] = radius * std::cos(theta);
      if (i + 2 * pair + 1 < count) out[i + 2 * pair + 1] = radius * std::sin(theta);
    }
  }
}

void add_noise_and_store(const double* values, double noise_std, Generator& gen, float* pixels) {
  double noise[kImagePixels];
  fill_standard_normal(gen, noise, kImagePixels);
  for (int64_t i = 0; i < kImagePixels; ++i)
    pixels[i] = float(std::clamp(values[i] + noise_std * noise[i], 0.0, 1.0));
}

void render(const Canvas& canvas, const Photometry& photometry, Generator& gen, float* pixels) {
  double values[kImagePixels];
  const std::vector<double>& ink = canvas.ink();
  for (int64_t i = 0; i < kImagePixels; ++i)
    values[i] = photometry.background + (photometry.foreground - photometry.background) * ink[i];
  add_noise_and_store(values, photometry.noise_std, gen, pixels);
}

double circle_distance(Point p, double radius) { return std::sqrt(p.x * p.x + p.y * p.y) - radius; }

double box_distance(Point p, double half_width, double half_height) {
  double qx = std::abs(p.x) - half_width, qy = std::abs(p.y) - half_height;
  double ox = std::max(qx, 0.0), oy = std::max(qy, 0.0);
  double outside = std::sqrt(ox * ox + oy * oy);
  return outside + std::min(std::max(qx, qy), 0.0);
}

// Distance to the nearest edge, negated inside (inside by the even-odd crossing rule), after I. Quilez.
double polygon_distance(Point p, const std::vector<Point>& v) {
  double best = (p.x - v[0].x) * (p.x - v[0].x) + (p.y - v[0].y) * (p.y - v[0].y);
  double sign = 1;
  for (size_t i = 0, j = v.size() - 1; i < v.size(); j = i, ++i) {
    double ex = v[j].x - v[i].x, ey = v[j].y - v[i].y;
    double wx = p.x - v[i].x, wy = p.y - v[i].y;
    double t = std::clamp((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0);
    double bx = wx - ex * t, by = wy - ey * t;
    best = std::min(best, bx * bx + by * by);
    bool c1 = p.y >= v[i].y, c2 = p.y < v[j].y, c3 = ex * wy > ey * wx;
    if ((c1 && c2 && c3) || (!c1 && !c2 && !c3)) sign = -sign;
  }
  return sign * std::sqrt(best);
}

}  // namespace linfuse::data

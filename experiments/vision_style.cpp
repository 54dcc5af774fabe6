#include "experiments/vision_style.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numbers>
#include <stdexcept>

#include "experiments/image_canvas.h"

namespace linfuse::data {
namespace {

struct Rgb {
  double r = 0, g = 0, b = 0;
};
Rgb mix(const Rgb& a, const Rgb& b, double t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

// The background's pattern t(x) in [0, 1], which mixes the image's two background colours.
enum class Texture {
  Paper,         // fine value noise: paper grain
  ColourBlobs,   // coarse value noise between two far-apart colours: MNIST-M's look
  Gradient,      // linear ramp along a random direction
  Vignette,      // radial: lighter centre, darker rim
  Weave,         // a fine cloth-like product of sines
  Plain,         // one colour
};
enum class Noise { Gaussian, Chroma, Speckle, SaltPepper, Blur };

struct DomainStyle {
  Rgb background_low, background_high;   // the background colours are drawn between these, per image
  Rgb ink_low, ink_high;                 // the ink colour likewise
  Texture texture = Texture::Plain;
  double zoom = 1;                       // object scale about the centre (content outside the frame is lost)
  Noise noise = Noise::Gaussian;
  double noise_level = 0.05;
};

// The eight styles (the header explains the model). mnist and glyphs: the related pair, ink on paper.
const std::map<std::string, DomainStyle>& styles() {
  static const std::map<std::string, DomainStyle> table = {
      {"mnist", {{0.78, 0.72, 0.60}, {0.92, 0.88, 0.78}, {0.05, 0.05, 0.20}, {0.20, 0.15, 0.35}, Texture::Paper, 1.0, Noise::Gaussian, 0.04}},
      {"glyphs", {{0.72, 0.72, 0.66}, {0.90, 0.88, 0.84}, {0.10, 0.05, 0.02}, {0.30, 0.20, 0.10}, Texture::Paper, 0.92, Noise::Gaussian, 0.05}},
      {"fashion_mnist", {{0.35, 0.15, 0.10}, {0.95, 0.75, 0.35}, {0.85, 0.85, 0.95}, {1.00, 1.00, 1.00}, Texture::ColourBlobs, 0.9, Noise::Chroma, 0.05}},
      {"shapes", {{0.05, 0.10, 0.45}, {0.20, 0.35, 0.80}, {0.95, 0.75, 0.10}, {1.00, 0.95, 0.40}, Texture::Gradient, 1.1, Noise::SaltPepper, 0.04}},
      {"gratings", {{0.00, 0.20, 0.05}, {0.05, 0.40, 0.15}, {0.50, 0.95, 0.70}, {0.70, 1.00, 0.90}, Texture::Vignette, 1.0, Noise::Speckle, 0.15}},
      {"dot_count", {{0.30, 0.05, 0.35}, {0.50, 0.15, 0.55}, {1.00, 0.60, 0.85}, {1.00, 0.85, 0.95}, Texture::Weave, 0.85, Noise::Gaussian, 0.06}},
      {"position", {{0.35, 0.00, 0.00}, {0.60, 0.10, 0.05}, {1.00, 0.60, 0.20}, {1.00, 0.90, 0.60}, Texture::Gradient, 0.9, Noise::Blur, 0.03}},
      {"textures", {{0.00, 0.25, 0.30}, {0.10, 0.40, 0.45}, {0.70, 0.95, 0.95}, {0.90, 1.00, 1.00}, Texture::Plain, 1.0, Noise::Chroma, 0.06}},
  };
  return table;
}

// A colour drawn between `low` and `high`, each channel jittered by up to +-0.05.
Rgb draw_colour(const Rgb& low, const Rgb& high, Generator& gen) {
  Rgb c = mix(low, high, gen.next_uniform());
  auto jitter = [&](double v) { return std::clamp(v + uniform(gen, -0.05, 0.05), 0.0, 1.0); };
  return {jitter(c.r), jitter(c.g), jitter(c.b)};
}

// Smooth value noise in [0, 1]: random values on a (cells + 1)^2 lattice, interpolated with a smoothstep.
void value_noise(int cells, Generator& gen, double* out) {
  std::vector<double> lattice(size_t((cells + 1) * (cells + 1)));
  for (double& v : lattice) v = gen.next_uniform();
  auto smooth = [](double t) { return t * t * (3 - 2 * t); };
  for (int64_t row = 0; row < kImageSide; ++row)
    for (int64_t col = 0; col < kImageSide; ++col) {
      double y = (row + 0.5) / kImageSide * cells, x = (col + 0.5) / kImageSide * cells;
      int y0 = std::min(int(y), cells - 1), x0 = std::min(int(x), cells - 1);
      double ty = smooth(y - y0), tx = smooth(x - x0);
      auto at = [&](int r, int c) { return lattice[size_t(r * (cells + 1) + c)]; };
      double top = at(y0, x0) + (at(y0, x0 + 1) - at(y0, x0)) * tx;
      double bottom = at(y0 + 1, x0) + (at(y0 + 1, x0 + 1) - at(y0 + 1, x0)) * tx;
      out[row * kImageSide + col] = top + (bottom - top) * ty;
    }
}

// The background pattern t(x) in [0, 1] of one image.
void texture_field(Texture texture, Generator& gen, double* t) {
  switch (texture) {
    case Texture::Paper: {
      value_noise(9, gen, t);
      for (int64_t i = 0; i < kImagePixels; ++i) t[i] *= 0.5;   // grain, low contrast
      return;
    }
    case Texture::ColourBlobs:
      value_noise(3, gen, t);
      return;
    case Texture::Gradient: {
      double angle = uniform(gen, 0, 2 * std::numbers::pi), c = std::cos(angle), s = std::sin(angle);
      for (int64_t row = 0; row < kImageSide; ++row)
        for (int64_t col = 0; col < kImageSide; ++col) {
          double u = ((col + 0.5) / kImageSide - 0.5) * c + ((row + 0.5) / kImageSide - 0.5) * s;   // in [-0.71, 0.71]
          t[row * kImageSide + col] = std::clamp(0.5 + u / 1.42, 0.0, 1.0);
        }
      return;
    }
    case Texture::Vignette: {
      double power = uniform(gen, 1.0, 2.0);
      for (int64_t row = 0; row < kImageSide; ++row)
        for (int64_t col = 0; col < kImageSide; ++col) {
          double dx = (col + 0.5) / kImageSide - 0.5, dy = (row + 0.5) / kImageSide - 0.5;
          t[row * kImageSide + col] = std::pow(std::min(1.0, std::sqrt(dx * dx + dy * dy) / 0.7071), power);
        }
      return;
    }
    case Texture::Weave: {
      double period = uniform(gen, 3.0, 4.5), phase_x = uniform(gen, 0, 6.3), phase_y = uniform(gen, 0, 6.3);
      double w = 2 * std::numbers::pi / period;
      for (int64_t row = 0; row < kImageSide; ++row)
        for (int64_t col = 0; col < kImageSide; ++col)
          t[row * kImageSide + col] = 0.5 + 0.25 * std::sin(w * col + phase_x) * std::sin(w * row + phase_y);
      return;
    }
    case Texture::Plain:
      std::fill(t, t + kImagePixels, 0.0);
      return;
  }
}

// The ink coverage of a gray image: its values stretched so that the image's own background is 0 and its brightest
// ink 1 (the 10th and 99th percentiles), then resampled at zoom `zoom` about the centre (bilinear; 0 outside).
void ink_coverage(const float* gray, double zoom, double* alpha) {
  std::array<float, kImagePixels> sorted;
  std::copy(gray, gray + kImagePixels, sorted.begin());
  std::sort(sorted.begin(), sorted.end());
  double low = sorted[kImagePixels / 10], high = sorted[kImagePixels * 99 / 100];
  double scale = high - low > 1e-6 ? 1.0 / (high - low) : 0.0;
  auto stretched = [&](int64_t row, int64_t col) {
    if (row < 0 || row >= kImageSide || col < 0 || col >= kImageSide) return 0.0;
    return std::clamp((gray[row * kImageSide + col] - low) * scale, 0.0, 1.0);
  };
  const double centre = kImageSide / 2.0;
  for (int64_t row = 0; row < kImageSide; ++row)
    for (int64_t col = 0; col < kImageSide; ++col) {
      // The source point of this pixel's centre, in pixel-centre coordinates of the gray image.
      double y = centre + (row + 0.5 - centre) / zoom - 0.5, x = centre + (col + 0.5 - centre) / zoom - 0.5;
      int64_t y0 = int64_t(std::floor(y)), x0 = int64_t(std::floor(x));
      double ty = y - double(y0), tx = x - double(x0);
      double top = stretched(y0, x0) * (1 - tx) + stretched(y0, x0 + 1) * tx;
      double bottom = stretched(y0 + 1, x0) * (1 - tx) + stretched(y0 + 1, x0 + 1) * tx;
      alpha[row * kImageSide + col] = top * (1 - ty) + bottom * ty;
    }
}

// The task's kind of noise on the styled image (3, 28, 28), in place.
void add_noise(Noise noise, double level, Generator& gen, double* rgb) {
  constexpr int64_t n = kStyledChannels * kImagePixels;
  switch (noise) {
    case Noise::Gaussian: {   // the same value on the three channels: luminance noise
      double normal[kImagePixels];
      fill_standard_normal(gen, normal, kImagePixels);
      for (int64_t c = 0; c < kStyledChannels; ++c)
        for (int64_t i = 0; i < kImagePixels; ++i) rgb[c * kImagePixels + i] += level * normal[i];
      return;
    }
    case Noise::Chroma: {   // independent per channel: colour noise
      std::vector<double> normal(n);
      fill_standard_normal(gen, normal.data(), n);
      for (int64_t i = 0; i < n; ++i) rgb[i] += level * normal[size_t(i)];
      return;
    }
    case Noise::Speckle: {   // multiplicative
      double normal[kImagePixels];
      fill_standard_normal(gen, normal, kImagePixels);
      for (int64_t c = 0; c < kStyledChannels; ++c)
        for (int64_t i = 0; i < kImagePixels; ++i) rgb[c * kImagePixels + i] *= 1 + level * normal[i];
      return;
    }
    case Noise::SaltPepper:
      for (int64_t i = 0; i < kImagePixels; ++i) {
        double u = gen.next_uniform();
        if (u < level)
          for (int64_t c = 0; c < kStyledChannels; ++c) rgb[c * kImagePixels + i] = u < level / 2 ? 0.0 : 1.0;
      }
      return;
    case Noise::Blur: {   // a 3 x 3 box blur (edges clamped), then faint luminance noise
      std::vector<double> blurred(n);
      for (int64_t c = 0; c < kStyledChannels; ++c)
        for (int64_t row = 0; row < kImageSide; ++row)
          for (int64_t col = 0; col < kImageSide; ++col) {
            double sum = 0;
            for (int64_t dy = -1; dy <= 1; ++dy)
              for (int64_t dx = -1; dx <= 1; ++dx) {
                int64_t r = std::clamp<int64_t>(row + dy, 0, kImageSide - 1), k = std::clamp<int64_t>(col + dx, 0, kImageSide - 1);
                sum += rgb[c * kImagePixels + r * kImageSide + k];
              }
            blurred[size_t(c * kImagePixels + row * kImageSide + col)] = sum / 9;
          }
      std::copy(blurred.begin(), blurred.end(), rgb);
      add_noise(Noise::Gaussian, level, gen, rgb);
      return;
    }
  }
}

}  // namespace

bool has_style(const std::string& task_name) { return styles().count(task_name) > 0; }

void style_image(const std::string& task_name, double strength, const float* gray, Generator& gen, float* rgb) {
  auto found = styles().find(task_name);
  if (found == styles().end()) throw std::invalid_argument("[style_image] no style for task '" + task_name + "'");
  if (!(strength >= 0 && strength <= 1))
    throw std::invalid_argument("[style_image] strength must be in [0, 1], got " + std::to_string(strength));
  const DomainStyle& style = found->second;
  // Draws happen whatever the strength, so an image's style choices do not depend on it.
  Rgb background_a = draw_colour(style.background_low, style.background_high, gen);
  Rgb background_b = draw_colour(style.background_low, style.background_high, gen);
  Rgb ink = draw_colour(style.ink_low, style.ink_high, gen);
  double zoom = 1 + strength * (style.zoom * uniform(gen, 0.95, 1.05) - 1);
  double pattern[kImagePixels], alpha[kImagePixels];
  texture_field(style.texture, gen, pattern);
  ink_coverage(gray, zoom, alpha);
  std::vector<double> styled(size_t(kStyledChannels * kImagePixels));
  for (int64_t i = 0; i < kImagePixels; ++i) {
    Rgb background = mix(background_a, background_b, pattern[i]);
    Rgb pixel = mix(background, ink, alpha[i]);
    styled[size_t(i)] = pixel.r, styled[size_t(kImagePixels + i)] = pixel.g, styled[size_t(2 * kImagePixels + i)] = pixel.b;
  }
  add_noise(style.noise, style.noise_level, gen, styled.data());
  for (int64_t c = 0; c < kStyledChannels; ++c)
    for (int64_t i = 0; i < kImagePixels; ++i) {
      double value = (1 - strength) * gray[i] + strength * styled[size_t(c * kImagePixels + i)];
      rgb[c * kImagePixels + i] = float(std::clamp(value, 0.0, 1.0));
    }
}

}  // namespace linfuse::data

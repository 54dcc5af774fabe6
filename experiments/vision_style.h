#pragma once
// Domain styles: every vision task drawn in a visual style of its own, the knob that separates the tasks' input
// distributions (issue 21). In the paper the tasks are different worlds (cars, street-view digits, satellite
// images, textures); here, at strength 0, all eight share one look (28 x 28 gray, dark background, light ink,
// Gaussian noise), so the tasks' inputs overlap and a weight change made for one task acts on all of them.
//
// A style is applied to a finished gray image g (values in [0, 1], g = ink coverage on a dark background):
//   styled(x) = background(x) * (1 - g(x')) + ink * g(x'),   x' = centre + (x - centre) / zoom
//   out(x)    = (1 - strength) * g(x) + strength * noise(styled(x))              (per RGB channel)
// where background(x) is the task's texture (paper grain, colour blobs as in MNIST-M, a gradient, a vignette, ...)
// in colours drawn per image from the task's palette, ink a colour drawn per image, zoom the task's object scale,
// and noise the task's kind of noise. Everything the style draws is drawn per image, never per class: the style
// says which task an image comes from, never which class (tests check it). Palettes are ranges, not colours, and
// neighbouring tasks' ranges overlap, so no single pixel names the task; at intermediate strengths every style is
// partly the shared gray look, so styles overlap more. mnist and glyphs keep related styles (ink on paper), as
// MNIST and SVHN are related in the paper's task set.
#include <string>

#include "tensor/random.h"

namespace linfuse::data {

constexpr int64_t kStyledChannels = 3;   // a styled image is RGB: (3, 28, 28), channel-major

// Writes the styled RGB image (3, 28, 28) of the gray image `gray` (28 x 28) of task `task_name` into `rgb`.
// strength in [0, 1]: 0 gives the gray image in all three channels. Uses only `gen`.
void style_image(const std::string& task_name, double strength, const float* gray, Generator& gen, float* rgb);

// Whether `task_name` has a style (every task of vision_task_names() has one).
bool has_style(const std::string& task_name);

}  // namespace linfuse::data

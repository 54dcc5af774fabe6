# Vision, lora: disentanglement error, mnist + shapes
# Written by the linfuse report writer from results.json. To restyle, edit this file and run
#   gnuplot disentanglement_vision_lora_mnist_shapes.gp
# in this folder: it rewrites disentanglement_vision_lora_mnist_shapes.png and disentanglement_vision_lora_mnist_shapes.svg.
if (!exists("output_prefix")) output_prefix = ""
do for [format in "png svg"] {
  reset
  if (format eq "png") {
    set terminal pngcairo size 600,560 font "Sans,11" noenhanced
  } else {
    set terminal svg size 600,560 font "Sans,11" noenhanced background "white"
  }
  set output output_prefix."disentanglement_vision_lora_mnist_shapes.".format
  set title "Vision, lora: disentanglement error, mnist + shapes"
  set size square
  unset key
  set xrange [-2.25:2.25]
  set yrange [-2.25:2.25]
  set xlabel "coefficient of mnist"
  set ylabel "coefficient of shapes"
  set cbrange [0:1]
  set cblabel "disentanglement error (range shared by the modes)"
  set palette defined (0 "#440154", 0.25 "#3b528b", 0.5 "#21918c", 0.75 "#5ec962", 1 "#fde725")
  set object 1 rectangle from -1,-1 to 1,1 front fillstyle empty border lc rgb "white" dt 2 lw 2
  set label 1 "|a|, |b| <= 1" at -0.95,0.85 front tc rgb "white" font ",9"
  plot "disentanglement_vision_lora_mnist_shapes.dat" using 1:2:3 with image
  unset output
}

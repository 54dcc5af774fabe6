# Text, lora: cosine similarity of task vectors
# Written by the linfuse report writer from results.json. To restyle, edit this file and run
#   gnuplot cosine_text_lora.gp
# in this folder: it rewrites cosine_text_lora.png and cosine_text_lora.svg.
if (!exists("output_prefix")) output_prefix = ""
do for [format in "png svg"] {
  reset
  if (format eq "png") {
    set terminal pngcairo size 620,560 font "Sans,11" noenhanced
  } else {
    set terminal svg size 620,560 font "Sans,11" noenhanced background "white"
  }
  set output output_prefix."cosine_text_lora.".format
  set title "Text, lora: cosine similarity of task vectors"
  set size square
  unset key
  set xrange [-0.5:2.5]
  set yrange [2.5:-0.5]
  set xtics ("cola" 0, "sst2" 1, "stsb" 2) rotate by 35 right nomirror scale 0
  set ytics ("cola" 0, "sst2" 1, "stsb" 2) nomirror scale 0
  set cbrange [-0.2:0.2]
  set cblabel "cosine similarity (range shared by the modes)"
  set palette defined (0 "#2166ac", 0.5 "#f7f7f7", 1 "#b2182b")
  plot "cosine_text_lora.dat" matrix using 1:2:($1 == $2 ? NaN : $3) with image, \
       "cosine_text_lora.dat" matrix using 1:2:(sprintf("%.2f", $3)):($1 != $2 && abs($3) > 0.12 ? 0xffffff : 0x000000) with labels font ",9" tc rgb variable
  unset output
}

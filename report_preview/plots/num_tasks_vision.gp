# Vision: normalized score vs number of merged tasks, Task arithmetic (parameter space)
# Written by the linfuse report writer from results.json. To restyle, edit this file and run
#   gnuplot num_tasks_vision.gp
# in this folder: it rewrites num_tasks_vision.png and num_tasks_vision.svg.
if (!exists("output_prefix")) output_prefix = ""
do for [format in "png svg"] {
  reset
  if (format eq "png") {
    set terminal pngcairo size 640,480 font "Sans,11" noenhanced
  } else {
    set terminal svg size 640,480 font "Sans,11" noenhanced background "white"
  }
  set output output_prefix."num_tasks_vision.".format
  set title "Vision suite: Task arithmetic (parameter space)"
  set xrange [1.5:4.5]
  set yrange [80:100]
  set xtics 1
  set grid ytics lc rgb "#cccccc" dt 3
  set xlabel "number of merged tasks"
  set ylabel "normalized score (%)"
  set key outside top center horizontal
  plot "num_tasks_vision.dat" index 0 using ($1-0.1):2:3 with yerrorlines lw 2 pt 5 ps 0.9 lc rgb "#404040" title "full", \
       "num_tasks_vision.dat" index 1 using ($1-0.05):2:3 with yerrorlines lw 2 pt 4 ps 0.9 lc rgb "#9a9a9a" title "linear-full", \
       "num_tasks_vision.dat" index 2 using 1:2:3 with yerrorlines lw 2 pt 7 ps 0.9 lc rgb "#1f77b4" title "lora", \
       "num_tasks_vision.dat" index 3 using ($1+0.05):2:3 with yerrorlines lw 2 pt 9 ps 0.9 lc rgb "#d62728" title "l-lora", \
       "num_tasks_vision.dat" index 4 using ($1+0.1):2:3 with yerrorlines lw 2 pt 11 ps 0.9 lc rgb "#ff7f0e" title "l-lora-local"
  unset output
}

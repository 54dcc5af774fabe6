# Vision: normalized score vs number of merged tasks, every method of the sweep
# Written by the linfuse report writer from results.json. To restyle, edit this file and run
#   gnuplot num_tasks_vision_methods.gp
# in this folder: it rewrites num_tasks_vision_methods.png and num_tasks_vision_methods.svg.
if (!exists("output_prefix")) output_prefix = ""
do for [format in "png svg"] {
  reset
  if (format eq "png") {
    set terminal pngcairo size 1300,405 font "Sans,11" noenhanced
  } else {
    set terminal svg size 1300,405 font "Sans,11" noenhanced background "white"
  }
  set output output_prefix."num_tasks_vision_methods.".format
  set multiplot title "Vision suite: normalized score vs number of merged tasks"
  set xrange [1.5:4.5]
  set yrange [80:100]
  set xtics 1
  set grid ytics lc rgb "#cccccc" dt 3
  set xlabel "number of merged tasks"
  set ylabel "normalized score (%)"
  unset key
  set lmargin at screen 0.0538462; set rmargin at screen 0.323077
  set tmargin at screen 0.82716; set bmargin at screen 0.234568
  set title "Task arithmetic (parameter space)"
  plot "num_tasks_vision.dat" index 0 using ($1-0.1):2:3 with yerrorlines lw 2 pt 5 ps 0.9 lc rgb "#404040" title "full", \
       "num_tasks_vision.dat" index 1 using ($1-0.05):2:3 with yerrorlines lw 2 pt 4 ps 0.9 lc rgb "#9a9a9a" title "linear-full", \
       "num_tasks_vision.dat" index 2 using 1:2:3 with yerrorlines lw 2 pt 7 ps 0.9 lc rgb "#1f77b4" title "lora", \
       "num_tasks_vision.dat" index 3 using ($1+0.05):2:3 with yerrorlines lw 2 pt 9 ps 0.9 lc rgb "#d62728" title "l-lora", \
       "num_tasks_vision.dat" index 4 using ($1+0.1):2:3 with yerrorlines lw 2 pt 11 ps 0.9 lc rgb "#ff7f0e" title "l-lora-local"
  set lmargin at screen 0.384615; set rmargin at screen 0.653846
  set tmargin at screen 0.82716; set bmargin at screen 0.234568
  set title "Task arithmetic (weight space)"
  plot "num_tasks_vision.dat" index 5 using 1:2:3 with yerrorlines lw 2 pt 7 ps 0.9 lc rgb "#1f77b4" title "lora", \
       "num_tasks_vision.dat" index 6 using ($1+0.05):2:3 with yerrorlines lw 2 pt 9 ps 0.9 lc rgb "#d62728" title "l-lora"
  set lmargin at screen 0.715385; set rmargin at screen 0.984615
  set tmargin at screen 0.82716; set bmargin at screen 0.234568
  set title "TIES-merging (parameter space)"
  plot "num_tasks_vision.dat" index 7 using 1:2:3 with yerrorlines lw 2 pt 7 ps 0.9 lc rgb "#1f77b4" title "lora", \
       "num_tasks_vision.dat" index 8 using ($1+0.05):2:3 with yerrorlines lw 2 pt 9 ps 0.9 lc rgb "#d62728" title "l-lora", \
       "num_tasks_vision.dat" index 9 using ($1+0.1):2:3 with yerrorlines lw 2 pt 11 ps 0.9 lc rgb "#ff7f0e" title "l-lora-local"
  unset title; unset xlabel; unset ylabel; unset tics; unset border; unset grid
  set xrange [0:1]; set yrange [0:1]
  set lmargin at screen 0; set rmargin at screen 1; set bmargin at screen 0; set tmargin at screen 0.0839506
  set key center center horizontal maxrows 1
  plot -1 notitle, \
       keyentry with yerrorlines lw 2 pt 5 ps 0.9 lc rgb "#404040" title "full", \
       keyentry with yerrorlines lw 2 pt 4 ps 0.9 lc rgb "#9a9a9a" title "linear-full", \
       keyentry with yerrorlines lw 2 pt 7 ps 0.9 lc rgb "#1f77b4" title "lora", \
       keyentry with yerrorlines lw 2 pt 9 ps 0.9 lc rgb "#d62728" title "l-lora", \
       keyentry with yerrorlines lw 2 pt 11 ps 0.9 lc rgb "#ff7f0e" title "l-lora-local"
  unset multiplot
  unset output
}

# gnuplot vision_scaling.gp  (from docs/figures): vision_scaling_seed0.png from vision_scaling_seed0.dat
set terminal pngcairo size 760,460 font "sans,10"
set output "vision_scaling_seed0.png"
set title "Vision, seed 0: one task vector scaled (r) against all 8 merged (task arithmetic G)"
set xlabel "lambda"
set ylabel "retained gain"
set key top left
set grid
set yrange [-1:1]
set arrow from 0,0 to 0.8,0 nohead dt 3
plot "vision_scaling_seed0.dat" using 1:2 with linespoints lw 2 lc rgb "#1f77b4" title "full: r (one vector)", \
     "" using 1:3 with linespoints lw 2 dt 2 lc rgb "#1f77b4" title "full: G (8 merged)", \
     "" using 1:4 with linespoints lw 2 lc rgb "#d62728" title "lora: r", \
     "" using 1:5 with linespoints lw 2 dt 2 lc rgb "#d62728" title "lora: G", \
     "" using 1:6 with linespoints lw 2 lc rgb "#2ca02c" title "l-lora: r", \
     "" using 1:7 with linespoints lw 2 dt 2 lc rgb "#2ca02c" title "l-lora: G"

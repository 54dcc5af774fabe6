# gnuplot vision_shift_dose.gp  (from docs/figures): vision_shift_dose.png from vision_shift_dose.dat
set terminal pngcairo size 900,380 font "sans,10"
set output "vision_shift_dose.png"
set multiplot layout 1,2 title "Vision, seed 0: the pretraining-style shift S (tasks at style 1.0; S = 1: no shift)"
set xlabel "pretraining style strength S"
set grid
set key bottom left
set ylabel "task arithmetic G"
set yrange [-0.5:0.7]
plot "vision_shift_dose.dat" using 1:3 with linespoints lw 2 lc rgb "#1f77b4" title "full", \
     "" using 1:4 with linespoints lw 2 lc rgb "#d62728" title "lora", \
     "" using 1:5 with linespoints lw 2 lc rgb "#2ca02c" title "l-lora"
set ylabel "points (one task's fine-tuning)"
set yrange [-12:35]
set key top right
plot "vision_shift_dose.dat" using 1:6 with linespoints lw 2 lc rgb "#1f77b4" title "full: own gain", \
     "" using 1:7 with linespoints lw 2 dt 2 lc rgb "#1f77b4" title "full: other-task change", \
     "" using 1:8 with linespoints lw 2 lc rgb "#d62728" title "lora: own gain", \
     "" using 1:9 with linespoints lw 2 dt 2 lc rgb "#d62728" title "lora: other-task change"
unset multiplot

# gnuplot vision_lr_dose.gp  (from docs/figures): vision_lr_dose.png from vision_lr_dose.dat
set terminal pngcairo size 900,380 font "sans,10"
set output "vision_lr_dose.png"
set datafile missing "?"
set multiplot layout 1,2 title "Vision, seed 0: the fine-tuning learning rate (x = multiple of the earlier preset's)"
set xlabel "learning rate / earlier preset's (3e-4 full, 3e-3 LoRA modes)"
set logscale x
set xtics ("1/10" 0.1, "1/3" 0.333, "1" 1, "10/3" 3.333)
set grid
set key bottom left
set ylabel "task arithmetic G"
set yrange [0:1]
plot "vision_lr_dose.dat" using 1:2 with linespoints lw 2 lc rgb "#1f77b4" title "full", \
     "" using 1:3 with linespoints lw 2 dt 2 lc rgb "#1f77b4" title "linear-full", \
     "" using 1:4 with linespoints lw 2 lc rgb "#d62728" title "lora", \
     "" using 1:5 with linespoints lw 2 lc rgb "#2ca02c" title "l-lora", \
     "" using 1:6 with linespoints lw 2 dt 2 lc rgb "#2ca02c" title "l-lora-local"
set ylabel "first-order leakage (other tasks / own)"
set yrange [0:0.7]
set key top left
plot "vision_lr_dose.dat" using 1:7 with linespoints lw 2 lc rgb "#1f77b4" title "full", \
     "" using 1:8 with linespoints lw 2 dt 2 lc rgb "#1f77b4" title "linear-full", \
     "" using 1:9 with linespoints lw 2 lc rgb "#d62728" title "lora", \
     "" using 1:10 with linespoints lw 2 lc rgb "#2ca02c" title "l-lora", \
     "" using 1:11 with linespoints lw 2 dt 2 lc rgb "#2ca02c" title "l-lora-local"
unset multiplot

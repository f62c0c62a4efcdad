# bench/latency.gp - round-trip latency (p50) by message size, one line per transport.
# Called by bench/run.sh:  gnuplot -e "same='A.dat'; diff='B.dat'; out='x.svg'; machine='...'" bench/latency.gp
# (diff='' when only one CPU was available).
set terminal svg size 1200,480 dynamic noenhanced font "sans,11" background "white"
set output out
set datafile missing "NaN"
set logscale xy
set xrange [40:1.7e6]
set grid
set key top left box opaque
set xlabel "message size"
set ylabel "round trip p50 (µs, log scale)"
set xtics ("64 B" 64, "512 B" 512, "4 KiB" 4096, "32 KiB" 32768, "256 KiB" 262144, "1 MiB" 1048576)
if (strlen(diff) > 0) { set multiplot layout 1,2 title "Round-trip latency by message size: ".machine } else { set title "Round-trip latency by message size: ".machine }
if (strlen(diff) > 0) { set title "both processes on one CPU" }
plot for [i=2:7] same using 1:i with linespoints lw 2 pt i title columnheader(i)
if (strlen(diff) > 0) { set title "processes on different CPUs"; plot for [i=2:7] diff using 1:i with linespoints lw 2 pt i title columnheader(i); unset multiplot }

# bench/chart.gp - throughput and CPU per poll of rest2mqtt against their baselines, from one
# benchmark record. bench/readme-table writes the data file from the record's .tsv and runs
#   gnuplot -e "data='FILE'; out='FILE.svg'; heading='...'" bench/chart.gp
# data: one line per size: label r2m200_ps r2m304_ps wrk_rps r2m200_us r2m304_us floor_us paced_us
set terminal svg size 960,460 dynamic font "sans,12" noenhanced background rgb "white"
set output out
set datafile separator "\t"
set multiplot layout 1,2 title heading
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set key below Left reverse
set grid ytics
set yrange [0:*]
set xlabel "endpoints"

set title "throughput, polls/s (higher is better)"
set ylabel "polls/s"
plot data using 2:xtic(1) title "rest2mqtt, 200 unchanged" lc rgb "#1f77b4", \
     ''   using 3 title "rest2mqtt, 304" lc rgb "#6baed6", \
     ''   using 4 title "wrk (raw HTTP)" lc rgb "#999999"

set title "CPU per poll, µs (lower is better)"
set ylabel "µs CPU per request"
plot data using 5:xtic(1) title "rest2mqtt, 200 unchanged" lc rgb "#1f77b4", \
     ''   using 6 title "rest2mqtt, 304" lc rgb "#6baed6", \
     ''   using 7 title "libcurl floor, flat out" lc rgb "#999999", \
     ''   using 8 title "libcurl floor, paced at rest2mqtt's rate" lc rgb "#cccccc"
unset multiplot

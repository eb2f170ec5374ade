"""How DARTS results are made: data, search, training, runs, statistics, report, benchmarks."""

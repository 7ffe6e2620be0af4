"""prescaler's benchmarks: each bench/<name>.py with a `main(argv)` writes bench/results/<name>.json and .md."""

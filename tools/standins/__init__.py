"""Local stand-ins of cloud services, for the tests and the benchmarks: real protocols on this machine."""

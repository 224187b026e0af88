"""End to end: dripper as real processes (kill tests, several workers), the CLI and the demo."""

"""Active learning (``equiprop learn``): committee -> explore -> select -> DFT label -> retrain."""

"""Privacy mechanisms: the k-anonymity generalization lattice, differential-privacy mechanisms with the exact budget ledger, and the re-identification audit."""

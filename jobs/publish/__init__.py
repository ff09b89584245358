"""Publishing: the k-anonymous gold aggregates and the differentially private public statistics."""

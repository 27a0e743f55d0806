"""Generation, metrics, reasoning diagnostics and reports for evaluating math models."""

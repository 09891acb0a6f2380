"""Great Expectations suites, quarantine of failing records, and the validation report."""

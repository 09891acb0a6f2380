"""``twin demo``: the whole loop on a corpus the project did not write (see PROVENANCE.md)."""

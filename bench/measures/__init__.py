"""One module per group of measures; each returns plain dicts that go into the results JSON."""

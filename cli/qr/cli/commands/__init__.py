"""One module per command; each parses its options and calls one library function."""

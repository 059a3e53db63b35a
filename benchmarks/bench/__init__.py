"""cliprt.bench: the harness behind `cliprt bench`."""

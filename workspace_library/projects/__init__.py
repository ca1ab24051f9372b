"""The caller's own projects, seen from the library: their code folder as a download."""

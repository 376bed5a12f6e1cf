"""fearkd."""

"""What the tests share: the real broker and databases, tokens, waiting, processes."""

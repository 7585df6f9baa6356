"""One module per `fashiongen` command (see fashiongen.cli): argument parsing and printing only, over the library."""
